"""Pure decisions of self-healing: where an incident is rooted, whether a remediation
may run (the guards, in order), and whether it worked.

Ids are derived from what they name, so a redelivered alert, a repeated decision or
a worker restarted mid-way produces the same incident and remediation ids, and the
stores' unique keys do the rest.

>>> root_cause({"db-1": frozenset(), "api-1": frozenset({"db-1"}),
...             "web-1": frozenset({"api-1", "db-1"})})
('db-1', ['api-1', 'web-1'])
>>> situation = Situation(members=10, unhealthy=6)
>>> decide(RESTART, situation, Limits()).guard
'circuit_breaker'
>>> decide(RESTART, Situation(members=10, unhealthy=1), Limits()).status
'requested'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["RESTART", "Limits", "Outcome", "PlaybookLike", "Situation", "Verdict", "decide",
           "incident_id", "remediation_id", "root_cause", "verify"]

HOUR_MS = 3_600_000

Status = Literal["requested", "skipped", "deferred", "awaiting_approval"]


class PlaybookLike(Protocol):
    """What a decision needs of a playbook."""

    @property
    def ref(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def needs_approval(self) -> bool: ...


@dataclass(frozen=True)
class _Plain:
    ref: str
    action: str
    needs_approval: bool


#: The seed's restart, for examples.
RESTART: PlaybookLike = _Plain("restart-service@1", "restart_service", False)


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def incident_id(fingerprint: str, first_ts: int) -> str:
    """The incident an alert episode opens (the same for a redelivered alert)."""
    return f"inc-{_digest(fingerprint, first_ts)}"


def remediation_id(incident: str, playbook: str, attempt: int, kind: str = "remediate") -> str:
    """One remediation of an incident episode: its idempotency key as an id."""
    return f"rem-{_digest(incident, playbook, attempt, kind)}"


def root_cause(members: Mapping[str, frozenset[str]]) -> tuple[str, list[str]]:
    """The root of an incident and its symptoms, from each alerting resource's
    dependencies (transitive, as the CMDB had them at the alert's time).

    The root is the deepest alerting dependency: an alerting resource that depends on
    no other alerting one; of several, the one most of the others depend on (then the
    smallest id, so the answer never depends on arrival order).
    """
    alerting = set(members)
    deepest = [m for m in sorted(alerting) if not (members[m] & alerting) - {m}]
    candidates = deepest or sorted(alerting)  # a dependency cycle: no resource is deepest
    dependants = {c: sum(c in members[m] for m in alerting if m != c) for c in candidates}
    root = min(candidates, key=lambda c: (-dependants[c], c))
    return root, sorted(alerting - {root})


@dataclass(frozen=True)
class Limits:
    """The guards' thresholds (:class:`~dharma.streams.settings.HealingSettings`)."""

    cooldown_ms: int = 30 * 60_000
    rate_per_hour: int = 3
    max_unhealthy: float = 0.4
    dry_run: bool = False


@dataclass(frozen=True)
class Situation:
    """What the guards look at, gathered for one target and playbook.

    ``members``/``unhealthy``: the target's group (same asset type and team in the
    CMDB) and how many of it alert or fail health checks; ``last_remediated``: the last
    request of this playbook on this target for another incident (ms); ``requested``:
    the playbook's requests in the last hour; ``deployment``/``chaos``: the id of a
    deployment in progress on the target, or of a running experiment that may hit it.
    """

    now: int = 0
    paused: bool = False
    members: int = 1
    unhealthy: int = 1
    chaos: str | None = None
    deployment: str | None = None
    last_remediated: int | None = None
    requested: int = 0
    approved: bool = False
    retry: bool = False


@dataclass(frozen=True)
class Verdict:
    """A decision: request it, or why not (the guard, for the published skip)."""

    status: Status
    guard: str | None = None
    reason: str = ""

    @property
    def requests(self) -> bool:
        return self.status == "requested"


def decide(playbook: PlaybookLike | None, s: Situation, limits: Limits) -> Verdict:
    """Run the guards in order; the first that objects decides.

    A circuit breaker or a chaos experiment skips for good (the incident is escalated
    or annotated); a pause or a deployment defers until it ends; approval holds until
    ``dharma remediation approve``; dry-run publishes what would have been requested.
    A retry (an earlier attempt failed) is not held by its own cooldown.  The circuit
    breaker needs two unhealthy members at least: one is the incident being healed.
    """
    if playbook is None:
        return Verdict("skipped", "no_playbook", "no playbook matches")
    share = s.unhealthy / max(s.members, 1)
    if s.unhealthy > 1 and share > limits.max_unhealthy:  # one sick member is an incident
        return Verdict("skipped", "circuit_breaker",
                       f"{s.unhealthy} of {s.members} in the group are unhealthy "
                       f"(more than {limits.max_unhealthy:.0%})")
    if s.chaos is not None:
        return Verdict("skipped", "chaos_experiment", f"inside chaos experiment {s.chaos}")
    if s.paused:
        return Verdict("deferred", "paused", "remediation is paused")
    if s.deployment is not None:
        return Verdict("deferred", "deployment", f"deployment {s.deployment} in progress")
    if (not s.retry and s.last_remediated is not None
            and s.now - s.last_remediated < limits.cooldown_ms):
        return Verdict("skipped", "cooldown", f"{playbook.ref} ran on this target "
                       f"{(s.now - s.last_remediated) // 60_000} min ago")
    if s.requested >= limits.rate_per_hour:
        return Verdict("skipped", "rate_limit",
                       f"{playbook.ref} ran {s.requested} times in the last hour")
    if limits.dry_run:
        return Verdict("skipped", "dry_run", f"would {playbook.action} (dry run)")
    if playbook.needs_approval and not s.approved:
        return Verdict("awaiting_approval", "approval", f"{playbook.ref} needs approval")
    return Verdict("requested", reason=f"{playbook.ref}: {playbook.action}")


Outcome = Literal["passed", "failed"]


def verify(samples: Sequence[tuple[int, float]], metric: str, below: float, start: int,
           window_ms: int, timed_out: bool) -> tuple[Outcome, str] | None:
    """Whether a verification window passed: every sample in ``[start, start + window]``
    under ``below``, and samples reaching the window's end (or, ``timed_out``, none
    left to wait for).  ``None``: not known yet.

    >>> verify([(0, 50.0), (100, 45.0)], "memory", 80, 0, 100, False)
    ('passed', 'memory under 80 for the window (max 50)')
    >>> verify([(0, 50.0), (60, 91.0)], "memory", 80, 0, 100, False) is None
    True
    >>> verify([(0, 50.0), (60, 91.0)], "memory", 80, 0, 100, True)
    ('failed', 'memory still at 91 (threshold 80)')
    """
    end = start + window_ms
    covered = any(ts >= end for ts, _ in samples)
    if not (covered or timed_out):
        return None
    inside = [v for ts, v in samples if start <= ts <= end]
    if not inside:
        return "failed", f"no {metric} samples in the window"
    peak = max(inside)
    if peak >= below:
        return "failed", f"{metric} still at {peak:g} (threshold {below:g})"
    return "passed", f"{metric} under {below:g} for the window (max {peak:g})"
