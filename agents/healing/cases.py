"""Table-driven playbook cases (``dharma playbook test``), like ``dharma policy test``.

A cases file::

    cases:
      - name: seed example                  # required
        issue_type: memory_leak             # required
        asset_type: web                     # optional: null = asset type unknown
        playbook: restart-service@1         # required: expected name@version (null: none)
        action: restart_service             # the rest optional
        risk: LOW
        requires_approval: false            # whether a human must approve (asked for,
        estimated_downtime_s: 30            # or risk above LOW)

The packaged cases for the default set are :func:`default_cases_file`.

>>> from dharma.agents.healing.playbooks import load_playbooks
>>> results = run_cases(load_playbooks(), load_cases(default_cases_file()))
>>> all(r.passed for r in results)
True
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from dharma.agents.healing.classify import ISSUE_TYPES
from dharma.agents.healing.playbooks import Playbook, PlaybookSet

__all__ = ["Case", "CaseResult", "CasesFile", "default_cases_file", "load_cases", "run_cases"]


class Case(BaseModel):
    """One row of a cases file: an issue on an asset and what must be chosen."""

    model_config = ConfigDict(extra="forbid")

    name: str
    issue_type: str
    asset_type: str | None = None
    playbook: str | None
    action: str | None = None
    risk: str | None = None
    requires_approval: bool | None = None
    estimated_downtime_s: int | None = None

    @field_validator("issue_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ISSUE_TYPES:
            raise ValueError(f"unknown issue type {value!r} (known: {list(ISSUE_TYPES)})")
        return value


class CasesFile(BaseModel):
    """A whole cases file."""

    model_config = ConfigDict(extra="forbid")

    cases: list[Case]


class CaseResult(BaseModel):
    """Outcome of one case."""

    name: str
    passed: bool
    expected: str
    got: str
    problems: list[str]


def load_cases(path: str | Path) -> CasesFile:
    """Read and validate a cases file (``yaml.safe_load``: data only)."""
    return CasesFile.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def default_cases_file() -> Path:
    """The cases shipped for the packaged default playbook set."""
    return Path(__file__).with_name("playbook_cases.yaml")


def _check(case: Case, found: Playbook | None) -> list[str]:
    if found is None:
        return [] if case.playbook is None else [f"no playbook matched, expected {case.playbook}"]
    problems = [] if found.ref == case.playbook else [f"playbook {found.ref} != {case.playbook}"]
    expected = {"action": case.action, "risk": case.risk,
                "requires_approval": case.requires_approval,
                "estimated_downtime_s": case.estimated_downtime_s}
    got = {"action": found.action, "risk": found.risk, "requires_approval": found.needs_approval,
           "estimated_downtime_s": found.estimated_downtime_s}
    problems += [f"{key} {got[key]} != {want}" for key, want in expected.items()
                 if want is not None and got[key] != want]
    return problems


def run_cases(playbooks: PlaybookSet, cases: CasesFile) -> list[CaseResult]:
    """Match every case and compare with its expectations."""
    results = []
    for case in cases.cases:
        found = playbooks.match(case.issue_type, case.asset_type)
        problems = _check(case, found)
        results.append(CaseResult(name=case.name, passed=not problems,
                                  expected=case.playbook or "-",
                                  got=found.ref if found else "-", problems=problems))
    return results
