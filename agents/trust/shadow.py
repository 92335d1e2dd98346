"""Shadow comparison: how a candidate policy set would have decided past events.

:func:`shadow_compare` is pure: it replays the events through the agent's batch
step (:class:`~dharma.agents.trust.logic.TrustStep`, over in-memory tables) once
per policy set, so each set's decisions also shape the behaviour its later
decisions see, as they would have live.  ``dharma policy shadow`` feeds it
events read from ``audit.logs`` and prints the report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from dharma.agents.trust.behaviour import UserBehaviour
from dharma.agents.trust.engine import RANK, Decision, TrustEngine
from dharma.agents.trust.logic import Logged, MemoryTables, TrustStep
from dharma.agents.trust.models import AccessEvent, InvalidAccessEvent, parse_access_event

__all__ = ["ShadowDiff", "ShadowReport", "shadow_compare"]


class ShadowDiff(BaseModel):
    """One event the two policy sets decided differently."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    user_id: str
    resource: str
    action: str
    current: str
    candidate: str
    current_policy: str | None
    candidate_policy: str | None


class ShadowReport(BaseModel):
    """Agreement between the current and the candidate policy set."""

    model_config = ConfigDict(frozen=True)

    current_version: str
    candidate_version: str
    total: int = 0
    agree: int = 0
    loosened: int = 0
    tightened: int = 0
    transitions: dict[str, int] = {}
    samples: list[ShadowDiff] = []

    @property
    def agreement(self) -> float:
        """Share of events decided the same way (1.0 when there were none)."""
        return self.agree / self.total if self.total else 1.0


def shadow_compare(
    events: Iterable[AccessEvent | dict[str, Any]],
    current_engine: TrustEngine,
    candidate_engine: TrustEngine,
    behaviour_of: Callable[[str], UserBehaviour] | None = None,
    max_samples: int = 50,
) -> ShadowReport:
    """Decide every event with both engines and report where they differ.

    Parameters
    ----------
    events
        Decoded ``audit.logs`` records or validated events.
    current_engine, candidate_engine
        Engines with the live and the proposed policy sets.
    behaviour_of
        The behaviour of a user id (default: a fresh behaviour for everyone).
    max_samples
        At most this many differing events are kept as samples.

    Returns
    -------
    ShadowReport
        Counts, ``"CURRENT->CANDIDATE"`` transitions, loosened (candidate more
        permissive) and tightened counts and sample differences.
    """
    tally = _Tally(max_samples)
    events = list(events)
    for cur, cand in zip(_replay(current_engine, events, behaviour_of),
                         _replay(candidate_engine, events, behaviour_of), strict=True):
        tally.add(cur, cand)
    return ShadowReport(
        current_version=current_engine.policies.version,
        candidate_version=candidate_engine.policies.version,
        total=tally.total,
        agree=tally.agree,
        loosened=tally.loosened,
        tightened=tally.tightened,
        transitions=dict(tally.transitions),
        samples=tally.samples,
    )


def _replay(engine: TrustEngine, events: list[AccessEvent | dict[str, Any]],
            behaviour_of: Callable[[str], UserBehaviour] | None) -> list[Decision]:
    """Each event's decision by ``engine``, in order: valid requests through the batch step
    (no deciding clock: a what-if replay), anything else decided alone (an invalid record
    is DENY)."""
    valid: list[tuple[Logged, AccessEvent]] = []
    for offset, event in enumerate(events):
        try:
            valid.append((Logged.at(0, offset), parse_access_event(event)))
        except InvalidAccessEvent:
            continue
    tables = _SeededTables(behaviour_of)
    step = TrustStep(engine, tables)
    out = step.fold(valid)
    step.store(out)
    decided = {ref.message.offset: decision for ref, _, decision in out.decided}
    return [decided.get(i) or engine.decide(event, tables.seed(event)) for i, event in
            enumerate(events)]


class _SeededTables(MemoryTables):
    """In-memory tables whose users start from ``behaviour_of`` (default: fresh)."""

    def __init__(self, behaviour_of: Callable[[str], UserBehaviour] | None) -> None:
        super().__init__()
        self.behaviour_of = behaviour_of

    def behaviour(self, user_id: str) -> UserBehaviour:
        if user_id not in self.behaviours and self.behaviour_of is not None:
            return self.behaviour_of(user_id)
        return super().behaviour(user_id)

    def seed(self, event: AccessEvent | dict[str, Any]) -> UserBehaviour:
        user = event.user_id if isinstance(event, AccessEvent) else str(event.get("user_id", ""))
        return self.behaviour(user)


class _Tally:
    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self.transitions: Counter[str] = Counter()
        self.samples: list[ShadowDiff] = []
        self.total = self.agree = self.loosened = self.tightened = 0

    def add(self, cur: Decision, cand: Decision) -> None:
        self.total += 1
        if cur.decision == cand.decision:
            self.agree += 1
            return
        self.transitions[f"{cur.decision}->{cand.decision}"] += 1
        self.loosened += RANK[cand.decision] > RANK[cur.decision]
        self.tightened += RANK[cand.decision] < RANK[cur.decision]
        if len(self.samples) < self.max_samples:
            self.samples.append(_diff(cur.to_record(), cand.to_record()))


def _diff(cur: dict[str, Any], cand: dict[str, Any]) -> ShadowDiff:
    return ShadowDiff(
        event_id=cur["event_id"],
        user_id=cur["user_id"],
        resource=cur["resource"],
        action=cur["action"],
        current=cur["decision"],
        candidate=cand["decision"],
        current_policy=cur["policy_id"],
        candidate_policy=cand["policy_id"],
    )
