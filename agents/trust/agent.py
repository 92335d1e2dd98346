"""Zero-trust agent on ``audit.logs`` (Faust wiring only).

Per batch: decode and validate (bad input to ``audit.logs.dlq``, never a
decision), decide access requests against the per-user behaviour table, open
sessions in Redis for ALLOWs, re-evaluate the live sessions that posture and
risk events touch (REVOKE or CHALLENGE), append every decision to the
PostgreSQL audit trail (written while the sessions are), then emit decisions
on ``ml.predictions`` and security alerts on ``alerts.notifications``.  A
decision is emitted only once it is audited; sink writes and outputs are
awaited before the batch is acknowledged (at-least-once; all writes
idempotent); when a sink gives up, the batch is dead-lettered with
``sink_error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import EventT

from dharma.agents.trust.engine import Decision, TrustEngine, Verdict
from dharma.agents.trust.index import default_policy_dir, load_policy_set
from dharma.agents.trust.models import AccessEvent, Rejection, parse_access_record
from dharma.agents.trust.session import Session, revalidate
from dharma.agents.trust.state import Outcome, TrustState
from dharma.sinks.audit import AuditSink, audit_row
from dharma.sinks.base import SinkUnavailable
from dharma.sinks.sessions import SessionStore
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters, split_batch
from dharma.streams.errors import ContractViolation, RejectedEvent
from dharma.streams.topics import ALERTS, AUDIT_LOGS, PREDICTIONS

__all__ = ["TrustPipeline", "check_events", "register"]

logger = logging.getLogger(__name__)

TRUST_BRANCH = "dharma.predictions.TrustDecision"

Accepted = list[tuple[EventT, AccessEvent]]
Rejected = list[tuple[EventT, RejectedEvent]]
Decided = list[tuple[EventT, AccessEvent, Decision]]
Message = tuple[str, bytes, bytes]


def check_events(ctx: StreamContext, events: Sequence[EventT]) -> tuple[Accepted, Rejected]:
    """Decode and validate a batch; hostile or malformed records are rejected, never decided."""
    def parse(event: EventT) -> AccessEvent:
        parsed = parse_access_record(ctx.wire.decode(AUDIT_LOGS.value_subject, event.message.value))
        if isinstance(parsed, Rejection):
            raise ContractViolation("; ".join((parsed.reason, *parsed.errors))[:2000])
        return parsed

    return split_batch(events, parse)


class TrustPipeline:
    """Tables, sinks and topics of the trust agent; one method per stage of a batch."""

    def __init__(self, app: faust.App, ctx: StreamContext, engine: TrustEngine) -> None:
        self.ctx, self.engine = ctx, engine
        self.state = TrustState(app, engine, ctx.emitter)
        self.dlq = raw_topic(app, AUDIT_LOGS.dlq)
        settings = ctx.settings
        self.audit = AuditSink(settings.postgres.dsn.get_secret_value())
        self.sessions = SessionStore(settings.redis.url.get_secret_value(),
                                     ttl_s=engine.config.allow_ttl_seconds)

    async def process(self, accepted: Accepted) -> None:
        """Decide, store (awaited), then emit; dead-letter the batch if a sink gives up."""
        try:
            messages = await self.decide_and_store(accepted)
        except SinkUnavailable as exc:
            await self.dead_letter(accepted, RejectedEvent("sink_error", str(exc)))
            return
        except Exception as exc:  # nothing may escape: Faust would ack it
            first = accepted[0][0].message
            logger.exception("trust batch failed first=%s[%s]@%s", first.topic, first.partition,
                             first.offset)
            await self.dead_letter(accepted, RejectedEvent("processing_error", repr(exc)))
            return
        for topic, key, value in messages:
            self.ctx.emitter.emit(topic, key, value)

    async def decide_and_store(self, accepted: Accepted) -> list[Message]:
        """Fold the batch through the tables, open and revalidate sessions, append the audit;
        the encoded outputs, to send once everything is stored.

        The audit rows are sent first, then the sessions; the table writes and the
        encoding of outputs run while PostgreSQL and Redis (on the other core) work.
        """
        out = self.state.fold(accepted)
        records = [(d.to_record(), a.record) for _, a, d in out.decided]
        writes = [asyncio.ensure_future(self.append_audit([audit_row(*r) for r in records]))]
        try:
            await asyncio.sleep(0)  # let the audit write send its request
            opened = [Session.open(d, a, request) for (_, a, d), (_, request)
                      in zip(out.decided, records, strict=True) if d.decision is Verdict.ALLOW]
            writes.append(asyncio.ensure_future(self.sessions.flush(opened)))
            await asyncio.sleep(0)
            self.state.store(out)
            messages = self.encode([d for d, _ in records], out.alerts)
            await writes[1]  # sessions opened before the updates of the batch revalidate them
            later = [(d.to_record(), a.record) for _, a, d in await self.revalidate(out)]
            messages += self.encode([d for d, _ in later], [])
        finally:  # never leave a write running; its error is the batch's (below)
            await asyncio.gather(*writes, return_exceptions=True)
        for write in writes:
            write.result()
        await self.append_audit([audit_row(*r) for r in later])
        return messages

    async def append_audit(self, rows: list[dict[str, Any]]) -> None:
        """Append rows to the audit trail (idempotent on the decision id)."""
        if rows:
            self.ctx.metrics.sink_rows.labels(self.audit.name).inc(await self.audit.flush(rows))

    async def dead_letter(self, accepted: Accepted, exc: RejectedEvent) -> None:
        """Send the whole batch to ``audit.logs.dlq`` with ``exc``'s kind and reason."""
        await send_dead_letters(self.ctx, self.dlq, [(event, exc) for event, _ in accepted])

    async def revalidate(self, out: Outcome) -> Decided:
        """Re-decide the live sessions each posture/risk update touches: REVOKE or CHALLENGE."""
        decided: Decided = []
        revoked: dict[str, Session] = {}
        challenged: dict[str, Session] = {}
        for event, update, behaviour in out.updates:
            touched = await self.sessions.touching(update.user_id, update.device.device_id)
            for session, status in touched:
                sid = session.session_id
                if sid in revoked or session.opened_ms > update.ts_ms:
                    continue  # already ended, or opened after this (older) update
                mine = behaviour if session.user_id == update.user_id else \
                    self.state.behaviour_of(session.user_id)
                decision = revalidate(self.engine, session, update, mine)
                if decision.decision is Verdict.REVOKE:
                    revoked[sid] = session
                elif decision.decision is not Verdict.CHALLENGE or status == "challenged" \
                        or sid in challenged:
                    continue
                else:
                    challenged[sid] = session
                decided.append((event, update, decision))
        await self.sessions.end(list(revoked.values()),
                                [s for k, s in challenged.items() if k not in revoked])
        return decided

    def encode(self, decisions: list[dict[str, Any]],
               alerts: list[dict[str, Any]]) -> list[Message]:
        """Decisions (key: user id) and alerts (key: fingerprint), encoded."""
        wire = self.ctx.wire
        messages = [(PREDICTIONS.name, wire.encode_key(PREDICTIONS.key_subject, record["user_id"]),
                     wire.encode(PREDICTIONS.value_subject, (TRUST_BRANCH, record)))
                    for record in decisions]
        for alert in alerts:
            messages.append((ALERTS.name, wire.encode(ALERTS.key_subject, alert["fingerprint"]),
                             wire.encode(ALERTS.value_subject, alert)))
            logger.info("alert kind=%s user=%s severity=%s", alert["kind"], alert["source"],
                        alert["severity"])
        return messages


def engine_from_settings(ctx: StreamContext) -> TrustEngine:
    """The engine over ``DHARMA_WORKER_POLICY_DIR`` (default: the packaged policies)."""
    policy_dir = ctx.settings.worker.policy_dir or default_policy_dir()
    return TrustEngine(load_policy_set(policy_dir))


def register(app: faust.App, ctx: StreamContext,
             engine: TrustEngine | None = None) -> faust.types.AgentT:
    """Add the trust agent, its tables and its sinks to ``app``."""
    worker = ctx.settings.worker
    pipeline = TrustPipeline(app, ctx, engine or engine_from_settings(ctx))
    source = raw_topic(app, AUDIT_LOGS)
    logger.info("trust policies version=%s count=%d", pipeline.engine.policies.version,
                len(pipeline.engine.policies))

    @app.agent(source, name="trust-decide")
    async def trust_decide(stream: faust.StreamT) -> None:
        """Decide audit.logs access requests; revoke sessions on posture/risk updates."""
        batches = stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
            worker.batch_size, within=worker.batch_within_s)
        async for events in batches:
            await pipeline.ctx.resolve_schemas(events)
            accepted, rejected = check_events(pipeline.ctx, events)
            await send_dead_letters(pipeline.ctx, pipeline.dlq, rejected)
            if accepted:
                await pipeline.process(accepted)
            await pipeline.ctx.emitter.flush()  # outputs acknowledged before the batch is

    return trust_decide
