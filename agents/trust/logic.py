"""The trust capability's batch step (pure: no faust, no I/O).

:class:`TrustStep` folds a batch of valid ``audit.logs`` events through the
users' tables: access requests are decided (against the deciding clock, when
one is given), posture and risk updates are collected for the live sessions
they touch, what each user's events teach is folded into their behaviour, and
security alerts are raised.  Nothing is written: the outcome says what the
tables become (:meth:`TrustStep.store` writes it, once the decisions stand;
:meth:`TrustStep.relearn` first redoes the users whose decision the sinks
turned).  The agent, ``dharma policy shadow`` (over in-memory tables,
:class:`MemoryTables`) and the tests run this one step.

A user whose behaviour record cannot be read (``BrokenCheckpoint``) is decided
DENY ``state_unavailable`` against the least trusted history (:data:`UNTRUSTED`),
and one critical alert says so.

>>> from dharma.agents.trust import default_engine
>>> step = TrustStep(default_engine(), MemoryTables())
>>> out = step.fold([])  # events: (consumed event or Logged.at(partition, offset), event)
>>> out.decided, out.changed
([], [])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, NamedTuple, Protocol, TypeVar

from dharma.agents.trust.alerts import AlertMemory, security_alerts, state_unavailable_alert
from dharma.agents.trust.behaviour import UserBehaviour
from dharma.agents.trust.engine import Decision, TrustEngine
from dharma.agents.trust.models import AccessEvent
from dharma.streams.errors import BrokenCheckpoint

__all__ = ["STATE_UNAVAILABLE", "UNTRUSTED", "Logged", "MemoryTables", "Outcome", "TrustStep",
           "UserTables"]

logger = logging.getLogger(__name__)

#: First reason of the DENY of a user whose behaviour record cannot be read.
STATE_UNAVAILABLE: Final = "state_unavailable"
#: The history that re-evaluates the live sessions of such a user: the least trusted.
UNTRUSTED = UserBehaviour(score=0.0)


class _Position(Protocol):
    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class Consumed(Protocol):
    """What the step reads of a consumed event: its log position (a Faust event is one)."""

    @property
    def message(self) -> _Position: ...


class LogPosition(NamedTuple):
    partition: int
    offset: int


class Logged(NamedTuple):
    """A replayed record's place in the log (what a Faust event's ``message`` gives)."""

    message: LogPosition

    @classmethod
    def at(cls, partition: int, offset: int) -> Logged:
        return cls(LogPosition(partition, offset))


R = TypeVar("R", bound=Consumed)


class UserTables(Protocol):
    """The users' tables the step reads (the agent's are changelog-backed)."""

    def behaviour(self, user_id: str) -> UserBehaviour:
        """The user's behaviour (fresh when new); ``BrokenCheckpoint`` when unreadable."""

    def alerts(self, user_id: str) -> AlertMemory:
        """The user's alert memory (fresh when new); ``BrokenCheckpoint`` when unreadable."""

    def write(self, user_id: str, behaviour: UserBehaviour | None, alerts: AlertMemory | None,
              last: Any) -> None:
        """Store what changed (None: unchanged); ``last``: the user's last event."""


class MemoryTables:
    """Users' tables in dicts: a replay's (``dharma policy shadow``) and the tests'."""

    def __init__(self, behaviours: dict[str, UserBehaviour] | None = None) -> None:
        self.behaviours = behaviours if behaviours is not None else {}
        self.memories: dict[str, AlertMemory] = {}

    def behaviour(self, user_id: str) -> UserBehaviour:
        return self.behaviours.get(user_id) or UserBehaviour()

    def alerts(self, user_id: str) -> AlertMemory:
        return self.memories.get(user_id) or AlertMemory()

    def write(self, user_id: str, behaviour: UserBehaviour | None, alerts: AlertMemory | None,
              last: Any) -> None:
        if behaviour is not None:
            self.behaviours[user_id] = behaviour
        if alerts is not None:
            self.memories[user_id] = alerts


@dataclass
class Outcome(Generic[R]):
    """What a batch of valid events produced."""

    decided: list[tuple[R, AccessEvent, Decision]] = field(default_factory=list)
    #: access requests dated close enough to the deciding clock to be believed
    fresh: list[AccessEvent] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: posture/risk updates, each with its user's behaviour *before* it
    updates: list[tuple[R, AccessEvent, UserBehaviour]] = field(default_factory=list)
    #: users' new table values (None: unchanged), with their last event: see TrustStep.store
    changed: list[tuple[str, UserBehaviour | None, AlertMemory | None, R]] = field(
        default_factory=list)
    #: the changed users' values before the batch: see TrustStep.relearn
    previous: list[tuple[str, UserBehaviour, AlertMemory]] = field(default_factory=list)
    #: each user's events, in log order
    events: dict[str, list[tuple[R, AccessEvent]]] = field(default_factory=dict)


def position(ref: Consumed) -> tuple[int, int]:
    """``(partition, offset)`` of a consumed event: what tells a replay."""
    return ref.message.partition, ref.message.offset


class TrustStep:
    """The batch step over ``tables`` with ``engine``: :meth:`fold`, then (once the
    decisions stand) :meth:`relearn` and :meth:`store`."""

    def __init__(self, engine: TrustEngine, tables: UserTables) -> None:
        self.engine, self.tables = engine, tables
        self.forbid_ids = frozenset(cp.id for cp in engine.policies.policies if cp.forbid)

    def behaviour_of(self, user_id: str) -> UserBehaviour:
        """The user's behaviour (a fresh one for a new user; :data:`UNTRUSTED` when their
        record cannot be read)."""
        try:
            return self.tables.behaviour(user_id)
        except BrokenCheckpoint:
            return UNTRUSTED

    def alerts_of(self, user_id: str) -> AlertMemory:
        """The user's alert memory (a fresh one when new, or when their record cannot be
        read: it only deduplicates alerts)."""
        try:
            return self.tables.alerts(user_id)
        except BrokenCheckpoint:
            return AlertMemory()

    def fold(self, items: Sequence[tuple[R, AccessEvent]],
             now_ms: int | None = None) -> Outcome[R]:
        """Decide access requests (against the deciding clock ``now_ms``), observe risk
        signals; the tables are not written yet: :meth:`store` writes ``out.changed``
        (one write per user and batch)."""
        out: Outcome[R] = Outcome()
        by_user = out.events
        for item in items:
            by_user.setdefault(item[1].user_id, []).append(item)
        for user, events in by_user.items():
            alerts = self.alerts_of(user)
            try:
                before = self.tables.behaviour(user)
            except BrokenCheckpoint as exc:
                after, new_alerts = UNTRUSTED, self._deny_user(events, alerts, exc, out, now_ms)
                before = UNTRUSTED  # never written: the record stays until it is repaired
            else:
                after, new_alerts = self._fold_user(events, before,
                                                    alerts.without(STATE_UNAVAILABLE), out, now_ms)
            if after is not before or new_alerts is not alerts:
                out.changed.append((user, None if after is before else after,
                                    None if new_alerts is alerts else new_alerts, events[-1][0]))
                out.previous.append((user, before, alerts))
        return out

    def store(self, out: Outcome[R]) -> None:
        """Write the users' new behaviour and alert memory, once the batch's decisions stand
        (a batch the audit trail could not take is dead-lettered and never stored: it is
        not counted); before anything reads the tables again."""
        for user, behaviour, alerts, last in out.changed:
            self.tables.write(user, behaviour, alerts, last)

    def _deny_user(self, events: list[tuple[R, AccessEvent]], alerts: AlertMemory,
                   exc: BrokenCheckpoint, out: Outcome[R], now_ms: int | None) -> AlertMemory:
        """Decide a user whose behaviour cannot be read: requests DENY ``state_unavailable``
        (or their time's reason), updates re-evaluate sessions against :data:`UNTRUSTED`;
        the user's alert memory, with the alert raised once."""
        engine, detail = self.engine, f"behaviour record unreadable ({exc})"
        for event, access in events:
            if access.event_type != "access_request":
                out.updates.append((event, access, UNTRUSTED))
                continue
            decision = None if now_ms is None else engine.untimely(access, now_ms)
            if decision is None:
                out.fresh.append(access)  # a worse posture it reports still revokes
                decision = engine.refuse(access, STATE_UNAVAILABLE, detail)
            out.decided.append((event, access, decision))
        logger.warning("trust user denied user=%s requests=%d: %s", events[0][1].user_id,
                       sum(a.event_type == "access_request" for _, a in events), detail)
        if STATE_UNAVAILABLE in alerts.last_fired:
            return alerts
        first = events[0][1]
        out.alerts.append(state_unavailable_alert(first, str(exc)))
        return alerts.fired(STATE_UNAVAILABLE, first.ts_ms)

    def _fold_user(self, events: list[tuple[R, AccessEvent]], behaviour: UserBehaviour,
                   alerts: AlertMemory, out: Outcome[R],
                   now_ms: int | None) -> tuple[UserBehaviour, AlertMemory]:
        engine, rules = self.engine, self.engine.rules
        for event, access in events:
            at = position(event)
            replayed = behaviour.has_seen(at, access.event_id)  # decided, not counted again
            if access.event_type != "access_request":  # applied whatever its age
                out.updates.append((event, access, behaviour))
                if not replayed:
                    behaviour = behaviour.observe(access, "update", rules, position=at,
                                                  at_ms=now_ms)
                continue
            late = None if now_ms is None else engine.untimely(access, now_ms)
            if late is not None:  # denied, and its clock is not believed: nothing learnt
                out.decided.append((event, access, late))
                continue
            out.fresh.append(access)
            signals = behaviour.signals(access, rules, now_ms)
            decision = engine.decide(access, behaviour, signals, now_ms)
            after = behaviour if replayed else \
                behaviour.observe(access, decision, rules, signals, at, now_ms)
            raised, alerts = security_alerts(access, decision, behaviour, after, alerts,
                                             self.forbid_ids, rules, signals=signals)
            out.decided.append((event, access, decision))
            out.alerts.extend(raised)
            behaviour = after
        return behaviour, alerts

    def relearn(self, out: Outcome[R], final: Sequence[Decision], now_ms: int | None) -> None:
        """Redo, in ``out.changed``, the behaviour of the users some of whose decisions the
        pipeline changed after the fold (an ALLOW turned DENY: the trail or the session
        store refused it), observing each of their events again with the decision that
        stands (``final[i]`` for ``out.decided[i]``): a refused ALLOW teaches nothing.
        Before :meth:`store`, so no record of what it taught is ever written."""
        changed = {out.decided[i][1].user_id for i, d in enumerate(final[:len(out.decided)])
                   if d is not out.decided[i][2]}
        if not changed:
            return
        stands = {id(access): final[i] for i, (_, access, _) in enumerate(out.decided)}
        fresh = {id(access) for access in out.fresh}
        rules = self.engine.rules
        for n, ((user, after, alerts, last), (_, before, _)) in enumerate(
                zip(out.changed, out.previous, strict=True)):
            if user not in changed or after is None:
                continue  # unchanged, or never written (an unreadable record)
            behaviour = before
            for event, access in out.events[user]:
                at = position(event)
                if behaviour.has_seen(at, access.event_id):
                    continue
                if access.event_type != "access_request":
                    behaviour = behaviour.observe(access, "update", rules, position=at,
                                                  at_ms=now_ms)
                elif id(access) in fresh:
                    behaviour = behaviour.observe(access, stands[id(access)], rules,
                                                  position=at, at_ms=now_ms)
            out.changed[n] = (user, behaviour, alerts, last)
