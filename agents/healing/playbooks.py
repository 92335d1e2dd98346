"""Provisional playbook set (replaced by the playbooks slice)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

__all__ = ["Playbook", "PlaybookSet", "Verification", "load_playbooks"]


class Verification(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str | None = None
    below: float | None = None
    health_check: bool = False
    window_s: float = 300.0
    grace_s: float = 0.0


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    version: int
    issue_types: list[str]
    asset_types: list[str] = []
    action: str
    risk: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    estimated_downtime_s: int = 0
    requires_approval: bool = False
    pre_checks: list[str] = []
    verification: Verification = Verification()
    rollback: str | None = None
    max_attempts: int = 1
    timeout_s: float | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def needs_approval(self) -> bool:
        return self.requires_approval or self.risk != "LOW"


class PlaybookSet:
    def __init__(self, playbooks: list[Playbook]) -> None:
        self.playbooks = playbooks

    def match(self, issue_type: str, asset_type: str | None) -> Playbook | None:
        def rank(p: Playbook) -> int:
            issue = issue_type in p.issue_types
            asset = asset_type in p.asset_types
            if issue and asset:
                return 0
            if issue and not p.asset_types:
                return 1
            if "*" in p.issue_types and (asset or not p.asset_types):
                return 2
            return 9
        best = sorted(((rank(p), i, p) for i, p in enumerate(self.playbooks)), key=lambda x: x[:2])
        return best[0][2] if best and best[0][0] < 9 else None


def load_playbooks(path: Path | None = None) -> PlaybookSet:
    path = path or Path(__file__).parent / "default_playbooks"
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    out: list[Playbook] = []
    for f in files:
        for doc in yaml.safe_load(f.read_text()) or []:
            out.append(Playbook.model_validate(doc))
    return PlaybookSet(out)
