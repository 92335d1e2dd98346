"""Tables of the trust agent, and folding a batch of events through them.

Two tables, both keyed by user id and co-partitioned with ``audit.logs``
(5 partitions, keyed by user id); their changelog records are these JSON
objects under the user id as a JSON string, the local store holds the
dataclasses (:class:`~dharma.streams.checkpoint.TypedTable`):

* ``trust-user-behaviour``: :meth:`UserBehaviour.to_dict`;
* ``trust-alert-state``: :meth:`AlertState.to_dict` (alert deduplication).

**A record that cannot be read** (not JSON, wrong types, out-of-range values,
a pickle...) is refused when its user is first read, logged and counted in
``dharma_checkpoints_rejected_total{table,reason}``.  An alert state refused
starts afresh (it only deduplicates alerts).  A behaviour refused cannot: it
also carries what lowers trust (risk signals, denials, the devices and places
seen), so a fresh one could raise the user's trust.  That user's access
requests are decided DENY ``state_unavailable`` (audited like any decision),
a critical ``state_unavailable`` alert is raised once (until the record is
readable again), and the user's posture updates, risk signals and requests
reporting a worse posture still re-evaluate their live sessions, against the
least trusted history (:data:`UNTRUSTED`, score 0); they are not folded into
the record, which stays as it is until an operator repairs it (a good record
or a tombstone, written while no worker of the group runs: ``docs/trust.md``).

**Seeding historical behaviour.**  A table is the replay of its changelog
topic ``<app id>-trust-user-behaviour-changelog`` (``<app id>`` is
``<DHARMA_WORKER_APP_ID>-trust``).  To import a user's historical score (say
85, from an earlier system), write the JSON record ``"user" -> {...}`` to that
topic on the partition of the user's ``audit.logs`` records *before* the
worker starts; :func:`seed_behaviour` does exactly that.  A running worker owns
the changelog: seed only while no worker of that group runs.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import faust
import orjson
from faust.types import EventT

from dharma.agents.trust.alerts import AlertState, security_alerts, state_unavailable_alert
from dharma.agents.trust.behaviour import UserBehaviour
from dharma.agents.trust.engine import Decision, TrustEngine
from dharma.agents.trust.models import AccessEvent
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import TypedTable, checkpoint_table, table_key
from dharma.streams.emitter import Emitter
from dharma.streams.errors import BrokenCheckpoint
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import Settings
from dharma.streams.topics import AUDIT_LOGS

__all__ = ["ALERT_TABLE", "BEHAVIOUR_TABLE", "STATE_UNAVAILABLE", "UNTRUSTED", "Outcome",
           "TrustState", "seed_behaviour"]

logger = logging.getLogger(__name__)

BEHAVIOUR_TABLE = "trust-user-behaviour"
ALERT_TABLE = "trust-alert-state"
#: First reason of the DENY of a user whose behaviour record cannot be read.
STATE_UNAVAILABLE: Final = "state_unavailable"
#: The history that re-evaluates the live sessions of such a user: the least trusted.
UNTRUSTED = UserBehaviour(score=0.0)

Item = tuple[EventT, AccessEvent]


@dataclass
class Outcome:
    """What a batch of valid events produced."""

    decided: list[tuple[EventT, AccessEvent, Decision]] = field(default_factory=list)
    #: access requests dated close enough to the deciding clock to be believed
    fresh: list[AccessEvent] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: posture/risk updates, each with its user's behaviour *before* it
    updates: list[tuple[EventT, AccessEvent, UserBehaviour]] = field(default_factory=list)
    #: users' new table values (None: unchanged), with their last event: see TrustState.store
    changed: list[tuple[str, UserBehaviour | None, AlertState | None, EventT]] = field(
        default_factory=list)
    #: the changed users' values before the batch: see TrustState.relearn
    previous: list[tuple[str, UserBehaviour, AlertState]] = field(default_factory=list)
    #: each user's events, in log order
    events: dict[str, list[tuple[EventT, AccessEvent]]] = field(default_factory=dict)


class TrustState:
    """The agent's tables and the engine; :meth:`fold` decides a batch."""

    def __init__(self, app: faust.App, engine: TrustEngine, emitter: Emitter,
                 metrics: PipelineMetrics | None = None) -> None:
        self.engine = engine
        self.behaviour = TypedTable(TableWriter(checkpoint_table(
            app, BEHAVIOUR_TABLE, AUDIT_LOGS.partitions,
            help="Per-user historical behaviour (UserBehaviour.to_dict())."), emitter),
            UserBehaviour, UserBehaviour.to_dict, UserBehaviour, metrics)
        self.alert_state = TypedTable(TableWriter(checkpoint_table(
            app, ALERT_TABLE, AUDIT_LOGS.partitions,
            help="Per-user alert deduplication state (AlertState.to_dict())."), emitter),
            AlertState, AlertState.to_dict, AlertState, metrics)
        self.forbid_ids = frozenset(cp.id for cp in engine.policies.policies if cp.forbid)

    def behaviour_of(self, user_id: str) -> UserBehaviour:
        """The user's behaviour (a fresh one for a new user; :data:`UNTRUSTED` when their
        record cannot be read)."""
        try:
            return self.behaviour.get(user_id)
        except BrokenCheckpoint:
            return UNTRUSTED

    def alerts_of(self, user_id: str) -> AlertState:
        """The user's alert state (a fresh one when new, or when their record cannot be read:
        it only deduplicates alerts)."""
        try:
            return self.alert_state.get(user_id)
        except BrokenCheckpoint:
            return AlertState()

    def fold(self, items: Sequence[Item], now_ms: int | None = None) -> Outcome:
        """Decide access requests (against the deciding clock ``now_ms``), observe risk
        signals; the tables are not written yet: :meth:`store` writes ``out.changed``
        (one write per user and batch)."""
        out = Outcome()
        by_user = out.events
        for item in items:
            by_user.setdefault(item[1].user_id, []).append(item)
        for user, events in by_user.items():
            alerts = self.alerts_of(user)
            try:
                before = self.behaviour.get(user)
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

    def store(self, out: Outcome) -> None:
        """Write the users' new behaviour and alert state (changelog records go out with
        the batch's other outputs), once the batch's decisions stand (a batch the audit
        trail could not take is dead-lettered and never stored: it is not counted);
        before anything reads the tables again."""
        for user, behaviour, alerts, last in out.changed:
            if behaviour is not None:
                self.behaviour.set(user, behaviour, last)
            if alerts is not None:
                self.alert_state.set(user, alerts, last)

    def _deny_user(self, events: list[Item], alerts: AlertState, exc: BrokenCheckpoint,
                   out: Outcome, now_ms: int | None) -> AlertState:
        """Decide a user whose behaviour cannot be read: requests DENY ``state_unavailable``
        (or their time's reason), updates re-evaluate sessions against :data:`UNTRUSTED`;
        the user's alert state, with the alert raised once."""
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

    def _fold_user(self, events: list[Item], behaviour: UserBehaviour, alerts: AlertState,
                   out: Outcome, now_ms: int | None) -> tuple[UserBehaviour, AlertState]:
        engine, rules = self.engine, self.engine.rules
        for event, access in events:
            position = (event.message.partition, event.message.offset)
            replayed = behaviour.has_seen(position)  # decided again, not counted again
            if access.event_type != "access_request":  # applied whatever its age
                out.updates.append((event, access, behaviour))
                if not replayed:
                    behaviour = behaviour.observe(access, "update", rules, position=position,
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
                behaviour.observe(access, decision, rules, signals, position, now_ms)
            raised, alerts = security_alerts(access, decision, behaviour, after, alerts,
                                             self.forbid_ids, rules, signals=signals)
            out.decided.append((event, access, decision))
            out.alerts.extend(raised)
            behaviour = after
        return behaviour, alerts

    def relearn(self, out: Outcome, final: Sequence[Decision], now_ms: int | None) -> None:
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
                position = (event.message.partition, event.message.offset)
                if behaviour.has_seen(position):
                    continue
                if access.event_type != "access_request":
                    behaviour = behaviour.observe(access, "update", rules, position=position,
                                                  at_ms=now_ms)
                elif id(access) in fresh:
                    behaviour = behaviour.observe(access, stands[id(access)], rules,
                                                  position=position, at_ms=now_ms)
            out.changed[n] = (user, behaviour, alerts, last)


def audit_partition(key: bytes, partitions: int = AUDIT_LOGS.partitions) -> int:
    """Partition librdkafka's default partitioner (``consistent_random``: CRC-32) picks."""
    return zlib.crc32(key) % partitions


def seed_behaviour(settings: Settings, group: str, behaviours: Mapping[str, UserBehaviour],
                   key_of: Any = None) -> str:
    """Write historical behaviours into the behaviour table's changelog (worker stopped).

    ``group`` is the worker's ``DHARMA_WORKER_APP_ID``; ``key_of(user)`` gives
    the serialised ``audit.logs`` key bytes of a user (to place the record on
    its partition; default: the user id in Confluent Avro string format is not
    known here, so partition 0 unless given).  Returns the changelog topic.
    """
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"{group}-trust-{BEHAVIOUR_TABLE}-changelog"
    conf = settings.kafka.confluent_config()
    admin = AdminClient(conf)
    if topic not in admin.list_topics(timeout=10).topics:
        new = NewTopic(topic, AUDIT_LOGS.partitions, 1, config={"cleanup.policy": "compact"})
        for future in admin.create_topics([new], request_timeout=10).values():
            future.result()
    producer = Producer(conf)
    for user, behaviour in behaviours.items():
        partition = audit_partition(key_of(user)) if key_of else 0
        producer.produce(topic, key=table_key(user), value=orjson.dumps(behaviour.to_dict()),
                         partition=partition)
    producer.flush(10)
    return topic
