"""Remediation playbooks: versioned YAML matched on issue type and asset type.

A playbook file holds a ``playbooks`` list (or is that list); a set is every
``*.yaml``/``*.yml`` file of a directory, read in file-name order (or one file).  YAML is data only
(``yaml.safe_load``): nothing in a playbook is ever executed here; the action is
a name an executor maps to its own job.

:meth:`PlaybookSet.match` picks the most specific playbook for an issue on an
asset: issue type and asset type both listed > issue type listed with any asset
> any issue (``"*"``) on a listed asset type > any issue on any asset (the
fallback).  Equally specific playbooks are taken in file order, so the choice is
deterministic.

Examples
--------
>>> pb = Playbook.model_validate({
...     "name": "restart-service", "version": 1, "issue_types": ["memory_leak"],
...     "asset_types": ["web"], "action": "restart_service", "risk": "LOW",
...     "estimated_downtime_s": 30})
>>> pb.ref, pb.needs_approval, pb.verification.window_s
('restart-service@1', False, 300.0)
>>> fallback = pb.model_copy(update={"name": "notify", "issue_types": ["*"],
...                                  "asset_types": [], "action": "notify"})
>>> found = PlaybookSet([fallback, pb]).match("memory_leak", "web")
>>> found.ref if found else None
'restart-service@1'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dharma.agents.healing.classify import ISSUE_TYPES
from dharma.streams.errors import DharmaError
from dharma.streams.yaml_files import read_yaml_documents

__all__ = [
    "ACTIONS", "ANY", "PRE_CHECKS", "RISKS", "Playbook", "PlaybookError", "PlaybookSet",
    "Verification", "default_playbook_dir", "load_playbooks", "validate_playbooks",
]

#: Wildcard of ``issue_types`` and ``asset_types``.
ANY = "*"

Action = Literal["restart_service", "scale_out", "rollback", "cleanup_disk", "clear_cache",
                 "failover", "notify"]
Risk = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
PreCheck = Literal["no_active_deployment", "not_in_chaos_experiment", "rollback_plan_exists",
                   "dependencies_healthy"]

#: Actions an executor is asked for; ``notify`` means "page a human", nothing else.
ACTIONS: tuple[str, ...] = get_args(Action)
#: Risk levels, lowest first.
RISKS: tuple[str, ...] = get_args(Risk)
#: Pre-checks the engine knows how to run.
PRE_CHECKS: tuple[str, ...] = get_args(PreCheck)


class PlaybookError(DharmaError):
    """A playbook file or set is invalid; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


class Verification(BaseModel):
    """What must hold after ``succeeded`` for the incident to be resolved.

    ``metric`` None means the alert's ``labels.metric``.  The metric must stay
    ``below`` a bound for ``window_s`` (None: the alert's ``labels.threshold``), or,
    for a drop's recovery (traffic back), ``above`` one (a number, or ``alert`` for
    the alert's threshold).  With no metric or no bound known (an alert without
    them), no metric is watched; ``health_check`` asks for a passing health check
    of the target (besides the metric, or instead of it).  Samples younger than
    ``grace_s`` after the success (the restart's own downtime) are ignored.

    >>> Verification(below=80).bound(None), Verification().bound(92.0)
    (('below', 80.0), ('below', 92.0))
    >>> Verification(above="alert").bound(50.0), Verification().bound(None)
    (('above', 50.0), None)
    >>> Verification(below=80).recovered(45.0, None), Verification(above=10).recovered(4.0, None)
    (True, False)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str | None = None
    below: float | None = None
    above: float | Literal["alert"] | None = None
    health_check: bool = False
    window_s: float = Field(300.0, gt=0)
    grace_s: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Verification:
        if self.below is not None and self.above is not None:
            raise ValueError("verification takes 'below' or 'above', not both")
        if self.grace_s >= self.window_s:
            raise ValueError(f"grace_s {self.grace_s} must be shorter than window_s "
                             f"{self.window_s}")
        return self

    def metric_for(self, alert_metric: str | None) -> str | None:
        """The metric watched: the playbook's, else the alert's."""
        return self.metric or alert_metric

    def bound(self, alert_threshold: float | None) -> tuple[str, float] | None:
        """``("below" | "above", value)`` the metric must keep, None if unknown."""
        if self.above is not None:
            above = alert_threshold if self.above == "alert" else self.above
            return None if above is None else ("above", float(above))
        below = self.below if self.below is not None else alert_threshold
        return None if below is None else ("below", float(below))

    def recovered(self, value: float, alert_threshold: float | None) -> bool:
        """Whether one sample is back on the healthy side (True when no bound is known:
        the metric is not watched then)."""
        bound = self.bound(alert_threshold)
        if bound is None:
            return True
        side, limit = bound
        return value < limit if side == "below" else value >= limit


class Playbook(BaseModel):
    """One versioned remediation strategy (see ``docs/healing.md``, "Playbooks")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: int = Field(ge=1)
    description: str = ""
    issue_types: list[str] = Field(min_length=1)
    asset_types: list[str] = []
    action: Action
    risk: Risk
    estimated_downtime_s: int = Field(0, ge=0)
    requires_approval: bool = False
    pre_checks: list[PreCheck] = []
    verification: Verification = Verification()
    rollback: Action | None = None
    max_attempts: int = Field(1, ge=1)
    timeout_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Playbook:
        unknown = sorted(set(self.issue_types) - set(ISSUE_TYPES) - {ANY})
        if unknown:
            raise ValueError(f"unknown issue type(s) {unknown} (known: {list(ISSUE_TYPES)})")
        if ANY in self.issue_types and len(self.issue_types) > 1:
            raise ValueError("issue_types '*' stands alone")
        if ANY in self.asset_types and len(self.asset_types) > 1:
            raise ValueError("asset_types '*' stands alone")
        if "rollback_plan_exists" in self.pre_checks and self.rollback is None:
            raise ValueError("pre-check rollback_plan_exists needs a 'rollback' action")
        return self

    @property
    def ref(self) -> str:
        """``name@version``, written on every remediation event."""
        return f"{self.name}@{self.version}"

    @property
    def needs_approval(self) -> bool:
        """Whether a human must approve: asked for, or any risk above LOW."""
        return self.requires_approval or self.risk != "LOW"

    @property
    def any_asset(self) -> bool:
        """Whether the playbook applies to every asset type."""
        return not self.asset_types or self.asset_types == [ANY]

    def specificity(self, issue_type: str, asset_type: str | None) -> int | None:
        """How specifically this playbook covers the issue (higher wins), None if not.

        >>> pb = Playbook(name="x", version=1, issue_types=["cpu_spike"], asset_types=["db"],
        ...               action="scale_out", risk="LOW", estimated_downtime_s=0)
        >>> pb.specificity("cpu_spike", "db"), pb.specificity("cpu_spike", "web")
        (3, None)
        """
        any_issue = self.issue_types == [ANY]
        if not any_issue and issue_type not in self.issue_types:
            return None
        if not self.any_asset and asset_type not in self.asset_types:
            return None
        return (0 if any_issue else 2) + (0 if self.any_asset else 1)


class PlaybookSet:
    """Playbooks in file order; ``name@version`` is unique.

    Parameters
    ----------
    playbooks
        The playbooks, in the order that breaks ties between equally specific ones.
    """

    def __init__(self, playbooks: Iterable[Playbook]) -> None:
        self.playbooks: tuple[Playbook, ...] = tuple(playbooks)
        refs = [pb.ref for pb in self.playbooks]
        dupes = sorted({r for r in refs if refs.count(r) > 1})
        if dupes:
            raise PlaybookError([f"duplicate playbook {d}" for d in dupes])

    def __len__(self) -> int:
        return len(self.playbooks)

    def __iter__(self) -> Iterator[Playbook]:
        return iter(self.playbooks)

    def match(self, issue_type: str, asset_type: str | None) -> Playbook | None:
        """The most specific playbook for ``issue_type`` on an ``asset_type`` asset
        (None: the asset's type is unknown), first in file order among equals."""
        best: Playbook | None = None
        best_rank = -1
        for pb in self.playbooks:
            rank = pb.specificity(issue_type, asset_type)
            if rank is not None and rank > best_rank:
                best, best_rank = pb, rank
        return best

    def find(self, name: str) -> list[Playbook]:
        """Playbooks called ``name`` (every version), or the one ``name@version``."""
        return [pb for pb in self.playbooks if name in (pb.name, pb.ref)]

    @classmethod
    def from_documents(cls, docs: Sequence[Any], names: Sequence[str]) -> PlaybookSet:
        """Build a set from parsed YAML documents, each ``{playbooks: [...]}``; ``names``
        label them in errors.  Every problem of every document is reported at once."""
        playbooks: list[Playbook] = []
        errors: list[str] = []
        for label, doc in zip(names, docs, strict=True):
            items, problem = _playbook_list(doc)
            if problem:
                errors.append(f"{label}: {problem}")
            for k, item in enumerate(items):
                try:
                    playbooks.append(Playbook.model_validate(item))
                except ValidationError as exc:
                    who = _label_of(item, k)
                    errors.extend(f"{label} playbook {who}: {_where(e)}{e['msg']}"
                                  for e in exc.errors())
        if errors:
            raise PlaybookError(errors)
        return cls(playbooks)


def _label_of(item: Any, index: int) -> str:
    if isinstance(item, dict) and "name" in item:
        return f"{item['name']}@{item.get('version', '?')}"
    return f"#{index}"


def _where(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    return f"{loc}: " if loc else ""


def _playbook_list(doc: Any) -> tuple[list[Any], str]:
    """The playbooks of a document (a ``playbooks`` mapping, or a bare list of
    playbooks), or why it holds none.

    >>> _playbook_list({"playbook": []})[1]
    "unknown top-level key(s) ['playbook'] (only 'playbooks')"
    >>> _playbook_list(None)[1]
    'empty: no playbooks'
    """
    if doc is None:
        return [], "empty: no playbooks"
    if isinstance(doc, dict):
        unknown = sorted(map(str, doc.keys() - {"playbooks"}))
        if unknown:
            return [], f"unknown top-level key(s) {unknown} (only 'playbooks')"
        doc = doc.get("playbooks")
    if not isinstance(doc, list) or not doc:
        return [], "'playbooks' must be a non-empty list"
    return doc, ""


def load_playbooks(path: str | Path | None = None) -> PlaybookSet:
    """Load a playbook directory (every ``*.yaml``/``*.yml``, by name) or one file;
    None: the packaged default set.  Raises :class:`PlaybookError`, also for a
    path that cannot be read."""
    where = Path(path) if path is not None else default_playbook_dir()
    try:
        docs, names = read_yaml_documents(where, PlaybookError, "playbook")
    except OSError as exc:
        raise PlaybookError([f"{where}: {exc.strerror or exc}"]) from exc
    return PlaybookSet.from_documents(docs, names)


def validate_playbooks(path: str | Path) -> list[str]:
    """Every problem of a playbook directory or file (empty when valid)."""
    try:
        load_playbooks(path)
    except PlaybookError as exc:
        return exc.errors
    return []


def default_playbook_dir() -> Path:
    """Directory of the packaged default playbook set."""
    return Path(__file__).with_name("default_playbooks")
