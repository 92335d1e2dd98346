"""The stages of one trust batch: decide, audit, open sessions, revalidate, emit.

Order is what makes the decisions fail closed:

1. fold the batch through the tables (decide against the worker's clock; a
   user whose behaviour record cannot be read is DENY ``state_unavailable``,
   :class:`~dharma.agents.trust.logic.TrustStep`, the capability's batch step);
2. append every decision to the audit trail and wait for the commit (the
   outputs are encoded meanwhile): when PostgreSQL stays away, every request of
   the batch is DENY ``audit_unavailable`` (emitted at once, so no enforcement
   point waits), the tables are left as they were, and the batch is held
   (:mod:`~dharma.streams.backpressure`) until those DENYs are audited; it is
   dead-lettered only when the outage outlasts its limit;
3. only then open the sessions of the ALLOWs the trail holds as such (an
   ALLOW whose id the trail holds for another request is DENY
   ``audit_conflict``); the open is refused for a session revoked or expired
   before (a replay never reopens one, and its ALLOW becomes DENY
   ``session_revoked`` or ``session_expired``); when Redis stays away, those
   ALLOWs become DENY ``session_unavailable`` (audited, emitted at once).
   The users of an ALLOW turned DENY have their behaviour observed again with
   the DENY (it teaches nothing); only then are the tables written, once per
   changed user;
4. re-evaluate the live sessions that posture and risk updates touch, and those
   a fresh request reports a worse posture for (REVOKE or CHALLENGE); when
   Redis stays away, a critical ``revalidation_failed`` alert per user (at once),
   and the batch is held until Redis is back to re-evaluate them then; the
   updates are dead-lettered only when the outage outlasts its limit;
5. emit decisions and alerts; the agent acknowledges the batch once the broker
   has them.

Any other exception: every request DENY ``internal_error``, batch dead-lettered.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

import faust
import orjson
from faust.types import EventT

from dharma.agents.trust.alerts import revalidation_alert
from dharma.agents.trust.behaviour import UserBehaviour
from dharma.agents.trust.engine import (
    AUDIT_UNAVAILABLE,
    SESSION_EXPIRED,
    SESSION_REVOKED,
    SESSION_UNAVAILABLE,
    Decision,
    TrustEngine,
    Verdict,
    fail_closed,
)
from dharma.agents.trust.logic import UNTRUSTED, TrustStep
from dharma.agents.trust.logic import Outcome as Folded
from dharma.agents.trust.models import AccessEvent, parse_access_event
from dharma.agents.trust.session import (
    Posture,
    Session,
    as_posture_update,
    is_worse,
    posture_of,
    revalidate,
    worst_postures,
)
from dharma.agents.trust.state import TrustTables
from dharma.sinks.audit import AuditSink, audit_row
from dharma.sinks.base import SinkUnavailable
from dharma.sinks.sessions import SessionStore
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.backpressure import Backpressure
from dharma.streams.errors import RejectedEvent
from dharma.streams.topics import ALERTS, AUDIT_LOGS, PREDICTIONS

__all__ = ["Accepted", "Refused", "TrustPipeline"]

logger = logging.getLogger(__name__)

TRUST_BRANCH = "dharma.predictions.TrustDecision"
INTERNAL_ERROR = "internal_error"
AUDIT_CONFLICT = "audit_conflict"

Item = tuple[EventT, AccessEvent]
Outcome: TypeAlias = Folded[EventT]
Accepted = list[Item]
#: DENY decisions of records that failed validation (dead-lettered too)
Refused = list[tuple[EventT, Decision]]
Message = tuple[str, bytes, bytes]
Pair = tuple[str, str]
#: An ALLOW's session to open: the ALLOW's position in the batch, the session, its posture.
Opening = tuple[int, Session, Posture]


class Recheck(NamedTuple):
    """One update to apply to live sessions; ``worse``: the posture a fresh request
    reported (then only its user's sessions on its device, recorded better, are touched)."""

    event: EventT
    update: AccessEvent
    behaviour: UserBehaviour
    worse: Posture | None = None


@dataclass
class Deferred:
    """Work of a batch that waits for a store to come back (the batch is held meanwhile,
    its decisions sent already); ``dead``: what to dead-letter if the hold gives up."""

    sink: str
    work: Callable[[], Awaitable[Result]]
    dead: list[tuple[EventT, RejectedEvent]]


@dataclass
class Result:
    """What a batch produces: decisions with their request records, alerts, dead letters,
    work deferred until a store is back."""

    decisions: list[Decision] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead: list[tuple[EventT, RejectedEvent]] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)

    def add(self, decision: Decision, request: dict[str, Any]) -> None:
        self.decisions.append(decision)
        self.requests.append(request)


class TrustPipeline:
    """Tables, sinks and topics of the trust agent; one method per stage of a batch."""

    def __init__(self, app: faust.App, ctx: StreamContext, engine: TrustEngine,
                 audit: AuditSink, sessions: SessionStore[Session]) -> None:
        self.ctx, self.engine = ctx, engine
        self.state = TrustStep(engine, TrustTables(app, ctx.emitter, ctx.metrics))
        self.dlq = raw_topic(app, AUDIT_LOGS.dlq)
        self.audit, self.sessions = audit, sessions
        config = engine.config  # a session must live, and be remembered, as the engine says
        if (sessions.ttl_s, sessions.guard_s) != (config.allow_ttl_seconds, config.replay_guard_s):
            raise ValueError("the session store's TTL and replay guard are not the engine's")
        self.backpressure = Backpressure.for_worker(
            lambda: app.consumer, [AUDIT_LOGS.name], ctx.metrics, ctx.settings.worker,
            retry_on=SinkUnavailable)

    async def process(self, accepted: Accepted, refused: Refused,
                      stray: Sequence[Item] = ()) -> None:
        """Run the batch's stages, then queue its outputs and dead letters (``stray``:
        updates dead-lettered for their key, which still reach live sessions)."""
        try:
            result, messages = await self.run(accepted, refused, time.time_ns() // 1_000_000,
                                              stray)
        except Exception as exc:  # nothing may escape: Faust would ack it
            first = (accepted or refused or stray)[0][0].message
            logger.exception("trust batch failed first=%s[%s]@%s", first.topic, first.partition,
                             first.offset)
            result, messages = self.internal_error(accepted, refused, exc), None
        for topic, key, value in messages or self.encode(result):
            self.ctx.emitter.emit(topic, key, value)
        for deferred in result.deferred:
            await self.ctx.emitter.flush()  # decisions answered now, not after the outage
            await self.finish(deferred)
        await send_dead_letters(self.ctx, self.dlq, result.dead)

    async def finish(self, deferred: Deferred) -> None:
        """Hold the batch until ``deferred`` is done (its outputs queued), or dead-letter
        what it leaves undone when the outage outlasts its limit."""
        try:
            later = await self.backpressure.hold(deferred.sink, deferred.work)
        except SinkUnavailable:
            await send_dead_letters(self.ctx, self.dlq, deferred.dead)
            return
        for topic, key, value in self.encode(later):
            self.ctx.emitter.emit(topic, key, value)

    async def run(self, accepted: Accepted, refused: Refused, now_ms: int,
                  stray: Sequence[Item] = ()) -> tuple[Result, list[Message] | None]:
        """The stages (see the module docstring); the encoded outputs when no decision had
        to change after they were encoded."""
        out = self.state.fold(accepted, now_ms)
        # against the least trusted history: their user's is on another partition
        out.updates += [(event, update, UNTRUSTED) for event, update in stray]
        result = Result(alerts=out.alerts)
        for _, access, decision in out.decided:
            result.add(decision, access.record)
        for _, decision in refused:
            result.add(decision, {})
        audit = asyncio.ensure_future(self.append_audit(result.decisions, result.requests))
        async with settled(audit):  # while PostgreSQL works:
            await asyncio.sleep(0)  # let the audit write send its request
            messages = self.encode(result)
            opening = self.sessions_of(out)
        try:
            confirmed = await audit
        except SinkUnavailable as exc:  # the tables stay as they were: not counted
            await self.audit_unavailable(out, result, accepted, exc)
            return result, None
        flagged, intact = await self.open_sessions(out, result, confirmed, opening)
        if not intact:  # an ALLOW turned DENY teaches nothing
            self.state.relearn(out, result.decisions, now_ms)
        self.state.store(out)  # what the batch taught, once its decisions stand
        if flagged is None:  # Redis is away: nothing to re-evaluate sessions with
            return result, None
        later = await self.recheck_sessions(out, result, flagged)
        result.decisions += later.decisions
        return result, (messages + self.encode(later)) if intact else None

    def sessions_of(self, out: Outcome) -> tuple[list[Opening], dict[Pair, Posture]]:
        """The session each ALLOW would open (with its position in ``out.decided`` and its
        device's posture); the worst posture each (user, device) pair reported."""
        config = self.engine.config
        opening = [(i, Session.open(decision, access, access.record),
                    posture_of(access.record["device"], config))
                   for i, (_, access, decision) in enumerate(out.decided)
                   if decision.decision is Verdict.ALLOW and decision.session_id is not None]
        return opening, worst_postures(out.fresh, config)

    async def open_sessions(self, out: Outcome, result: Result, confirmed: set[int],
                            sessions: tuple[list[Opening], dict[Pair, Posture]]
                            ) -> tuple[set[Pair] | None, bool]:
        """Open the sessions of the ALLOWs the trail holds; the (user, device) pairs reporting
        a worse posture (None: Redis is away), and whether every decision stands as encoded."""
        candidates, requested = sessions
        conflicts = set()
        for i, (_, access, decision) in enumerate(out.decided):
            if decision.decision is Verdict.ALLOW and i not in confirmed:
                conflicts.add(i)  # its id holds another decision or request in the trail
                result.decisions[i] = fail_closed(
                    decision, AUDIT_CONFLICT, "the audit trail holds another decision under "
                    "this id", request_digest(access.record))
        opening = [(s, p) for i, s, p in candidates if i not in conflicts]
        try:
            opened = await self.sessions.open(opening, requested)
        except SinkUnavailable as exc:
            unopened = {s.session_id for s, _ in opening}
            result.decisions = [fail_closed(d, SESSION_UNAVAILABLE, f"session store: {exc}")
                                if d.session_id in unopened else d for d in result.decisions]
            self.defer_rechecks(out, result, str(exc), requested=requested)
            await self.audit_quietly(result)
            return None, False
        if opened.refused:
            result.decisions = [refused(d, opened.refused.get(d.session_id))
                                if d.session_id else d for d in result.decisions]
        if conflicts or opened.refused:
            await self.audit_quietly(result)
        return opened.worse, not (conflicts or opened.refused)

    async def recheck_sessions(self, out: Outcome, result: Result, flagged: set[Pair]) -> Result:
        """Re-evaluate the sessions the batch's updates touch; audit what it decides."""
        rechecks, later = self.rechecks(out, flagged), Result()
        try:
            for decision, update in await self.revalidate(rechecks):
                later.add(decision, update.record)
        except SinkUnavailable as exc:
            self.defer_rechecks(out, result, str(exc), flagged=flagged)
            return later
        try:
            await self.append_audit(later.decisions, later.requests)
        except SinkUnavailable as exc:  # revoked all the same; the gap is dead-lettered
            result.dead += [(r.event, RejectedEvent("sink_error", str(exc)))
                            for r in rechecks if r.worse is None]
        return later

    def defer_rechecks(self, out: Outcome, result: Result, detail: str,
                       flagged: set[Pair] | None = None,
                       requested: Mapping[Pair, Posture] | None = None) -> None:
        """Redis is away: alert now, re-evaluate the sessions the batch touches once it is
        back (the batch held meanwhile); the updates are dead letters if it stays away.
        ``flagged`` (or, when Redis did not say, the ``requested`` postures to ask it for):
        the pairs reporting a worse posture."""
        failed = Result()
        self.recheck_failed(self.rechecks(out, flagged or set()), failed, detail)
        result.alerts += failed.alerts
        later: Result | None = None

        async def work() -> Result:
            nonlocal later
            if later is None:  # re-evaluated once; its decisions audited until it works
                pairs = flagged if flagged is not None else \
                    (await self.sessions.open([], requested or {})).worse
                later = Result()
                for decision, update in await self.revalidate(self.rechecks(out, pairs)):
                    later.add(decision, update.record)
            await self.append_audit(later.decisions, later.requests)
            return later

        result.deferred.append(Deferred(self.sessions.name, work, failed.dead))

    def rechecks(self, out: Outcome, flagged: set[Pair]) -> list[Recheck]:
        """Posture and risk updates, and fresh requests reporting a worse posture than their
        sessions recorded, in log order."""
        work = [Recheck(event, update, behaviour) for event, update, behaviour in out.updates]
        if flagged:
            fresh, config = {id(a) for a in out.fresh}, self.engine.config
            for event, access, _ in out.decided:
                pair = (access.user_id, access.device.device_id)
                if pair in flagged and id(access) in fresh:
                    update = parse_access_event(as_posture_update(access))  # valid: its request is
                    work.append(Recheck(event, update, self.state.behaviour_of(access.user_id),
                                        posture_of(access.record["device"], config)))
        work.sort(key=lambda r: (r.event.message.partition, r.event.message.offset))
        return work

    async def revalidate(self, rechecks: list[Recheck]) -> list[tuple[Decision, AccessEvent]]:
        """Re-decide the live sessions each update touches: REVOKE or CHALLENGE."""
        decided: list[tuple[Decision, AccessEvent]] = []
        revoked: dict[str, Session] = {}
        challenged: dict[str, Session] = {}
        for r in rechecks:
            update = r.update
            for session, status in await self.sessions.touching(update.user_id,
                                                                update.device.device_id):
                sid = session.session_id
                if sid in revoked or not self._affected(r, session):
                    continue
                mine = r.behaviour if session.user_id == update.user_id else \
                    self.state.behaviour_of(session.user_id)
                # an update older than the session does not move it back in time
                at_ms = max(update.ts_ms, session.opened_ms)
                decision = revalidate(self.engine, session, update, mine, at_ms)
                if decision.decision is Verdict.REVOKE:
                    revoked[sid] = session
                elif decision.decision is not Verdict.CHALLENGE or status == "challenged" \
                        or sid in challenged:
                    continue
                else:
                    challenged[sid] = session
                decided.append((decision, update))
        await self.sessions.end(list(revoked.values()),
                                [s for k, s in challenged.items() if k not in revoked])
        return decided

    def _affected(self, r: Recheck, session: Session) -> bool:
        """Posture and risk updates touch every session of their user or device, whatever
        their age (they only lower trust); a request, its user's earlier sessions on its
        device that recorded a better posture."""
        if r.worse is None:
            return True
        update = r.update
        if (session.user_id, session.device_id) != (update.user_id, update.device.device_id) \
                or session.opened_ms > update.ts_ms:
            return False
        try:
            recorded = posture_of(session.request["device"], self.engine.config)
        except (KeyError, TypeError, ValueError):
            return True  # an unreadable stored posture: re-decide (it revokes)
        return is_worse(r.worse, recorded)

    def recheck_failed(self, rechecks: list[Recheck], result: Result, detail: str) -> None:
        """Sessions could not be re-evaluated: a critical alert per user, updates dead-lettered."""
        users: set[str] = set()
        for r in rechecks:
            if r.update.user_id not in users:
                users.add(r.update.user_id)
                result.alerts.append(revalidation_alert(r.update, detail))
            if r.worse is None:
                result.dead.append((r.event, RejectedEvent("sink_error", detail)))
        if rechecks:
            logger.error("trust sessions not re-evaluated updates=%d users=%d: %s",
                         len(rechecks), len(users), detail)

    async def audit_unavailable(self, out: Outcome, result: Result, accepted: Accepted,
                                exc: SinkUnavailable) -> None:
        """The trail is down: every request DENY, updates still applied, batch dead-lettered."""
        detail = f"audit trail unavailable: {exc}"
        result.decisions[:len(out.decided)] = [
            fail_closed(d, AUDIT_UNAVAILABLE, detail) for _, _, d in out.decided]
        logger.error("trust batch denied count=%d: %s", len(result.decisions), detail)
        rechecks = self.rechecks(out, set())
        try:
            for decision, update in await self.revalidate(rechecks):
                result.add(decision, update.record)  # emitted now, audited with the DENYs
        except SinkUnavailable as redis_exc:
            self.recheck_failed(rechecks, result, str(redis_exc))
        decisions, requests = list(result.decisions), list(result.requests)

        async def audit() -> Result:
            await self.append_audit(decisions, requests)
            return Result()

        dead = {id(event) for event, _ in result.dead}  # updates Redis did not take either
        result.deferred.append(Deferred(self.audit.name, audit, [
            (event, RejectedEvent("sink_error", detail)) for event, _ in accepted
            if id(event) not in dead]))

    def internal_error(self, accepted: Accepted, refused: Refused, exc: Exception) -> Result:
        """Every request of a batch that failed unexpectedly: DENY; the batch dead-lettered."""
        result = Result()
        for _, access in accepted:
            if access.event_type == "access_request":
                result.add(self.engine.refuse(access, INTERNAL_ERROR, type(exc).__name__), {})
        for _, decision in refused:
            result.add(decision, {})
        result.dead = [(event, RejectedEvent("processing_error", repr(exc)))
                       for event, _ in accepted]
        return result

    async def append_audit(self, decisions: list[Decision],
                           requests: list[dict[str, Any]]) -> set[int]:
        """Append decisions to the audit trail; the positions of the ALLOWs it holds as such."""
        if not decisions:
            return set()
        rows = [audit_row(d.to_record(), r) for d, r in zip(decisions, requests, strict=True)]
        confirmed = await self.audit.append(rows)
        self.ctx.metrics.sink_rows.labels(self.audit.name).inc(len(rows))
        return confirmed

    async def audit_quietly(self, result: Result) -> None:
        """Append the batch again, with the fail-closed DENYs that replaced decisions (best
        effort: they deny; the rows stored already are not written twice)."""
        try:
            await self.append_audit(result.decisions, result.requests)
        except SinkUnavailable:
            logger.exception("trust fail-closed decisions not audited count=%d",
                             len(result.decisions))

    def encode(self, result: Result) -> list[Message]:
        """Decisions (key: user id) and alerts (key: fingerprint), encoded."""
        wire = self.ctx.wire
        messages = []
        for decision in result.decisions:
            record = decision.to_record()
            messages.append((PREDICTIONS.name,
                             wire.encode_key(PREDICTIONS.key_subject, record["user_id"]),
                             wire.encode(PREDICTIONS.value_subject, (TRUST_BRANCH, record))))
        for alert in result.alerts:
            messages.append((ALERTS.name, wire.encode(ALERTS.key_subject, alert["fingerprint"]),
                             wire.encode(ALERTS.value_subject, alert)))
            logger.info("alert kind=%s user=%s severity=%s", alert["kind"], alert["source"],
                        alert["severity"])
        return messages


def refused(decision: Decision, status: str | None) -> Decision:
    """An ALLOW whose session the store refused to open (``status``: ``revoked`` or
    ``expired``, None: opened) as the DENY it becomes: a replay never passes as an ALLOW."""
    if status is None or decision.decision is not Verdict.ALLOW:
        return decision
    code = SESSION_REVOKED if status == "revoked" else SESSION_EXPIRED
    return fail_closed(decision, code, f"session {decision.session_id} was {status}: "
                       "it never opens again")


def request_digest(record: dict[str, Any]) -> str:
    """A digest of a request's content (its own decision ids when its id is taken)."""
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


@asynccontextmanager
async def settled(write: asyncio.Future[Any]) -> AsyncIterator[None]:
    """Work done while ``write`` runs; if it fails, ``write`` is awaited before the error
    goes on (never a write left running unobserved)."""
    try:
        yield
    except BaseException:
        await asyncio.gather(write, return_exceptions=True)
        raise
