"""Zero-trust agent on ``audit.logs`` (Faust wiring only).

Per batch: decode and validate; a record that fails (including one whose key
is not its ``user_id``: the tables are keyed, and partitioned, by user) goes to
``audit.logs.dlq`` and, when its user or event id can be read, is also decided
DENY (reasons: the error kind and the validation errors) and audited, so an
enforcement point waiting for it gets an answer.  The valid records go through
:class:`~dharma.agents.trust.pipeline.TrustPipeline`: decide against the
worker's clock, audit (committed before any session opens), open sessions,
re-evaluate live sessions, emit.  Outputs are awaited before the batch is
acknowledged (at-least-once; all writes idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import chain
from typing import Any

import faust
from faust.types import EventT

from dharma.agents.trust.config import TrustConfig
from dharma.agents.trust.engine import TrustEngine, deterministic_id
from dharma.agents.trust.index import default_policy_dir, load_policy_set
from dharma.agents.trust.models import AccessEvent, Rejection, parse_access_record
from dharma.agents.trust.pipeline import Accepted, Refused, TrustPipeline
from dharma.agents.trust.session import Session
from dharma.sinks.audit import AuditSink
from dharma.sinks.sessions import SessionStore
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters, split_batch
from dharma.streams.errors import ContractViolation, RejectedEvent
from dharma.streams.topics import AUDIT_LOGS

__all__ = ["InvalidAccessRecord", "MisKeyedRecord", "TrustPipeline", "check_events", "refusals",
           "register", "stray_updates"]

logger = logging.getLogger(__name__)

Rejected = list[tuple[EventT, RejectedEvent]]


class InvalidAccessRecord(ContractViolation):
    """A decoded ``audit.logs`` record that is not a valid access event (kept for its ids)."""

    def __init__(self, raw: dict[str, Any], rejection: Rejection) -> None:
        super().__init__("; ".join((rejection.reason, *rejection.errors))[:2000])
        self.raw, self.rejection = raw, rejection


class MisKeyedRecord(InvalidAccessRecord):
    """A valid event whose key is not its ``user_id``: on another user's partition, it is
    decided against no history and must not write one; kept, since a posture update or
    risk signal still re-evaluates the live sessions it names (it only lowers trust)."""

    def __init__(self, raw: dict[str, Any], event: AccessEvent) -> None:
        super().__init__(raw, Rejection(reason="key is not the record's user_id", errors=(
            "audit.logs records are keyed by their user_id",)))
        self.event = event


def check_events(ctx: StreamContext, events: Sequence[EventT]) -> tuple[Accepted, Rejected]:
    """Decode and validate a batch; hostile or malformed records are rejected."""
    def parse(event: EventT) -> AccessEvent:
        raw = ctx.wire.decode(AUDIT_LOGS.value_subject, event.message.value)
        parsed = parse_access_record(raw)
        if isinstance(parsed, Rejection):
            raise InvalidAccessRecord(raw, parsed)
        if not _keyed_by(ctx, event.message.key, parsed.user_id):
            raise MisKeyedRecord(raw, parsed)
        return parsed

    return split_batch(events, parse)


def _keyed_by(ctx: StreamContext, key: bytes | None, user_id: str) -> bool:
    """Whether ``key`` is ``user_id``: our encoding of it (compared as bytes: the usual,
    fast case), or any other writer schema's (decoded)."""
    if key is None:
        return False
    try:
        if key == ctx.wire.encode_key(AUDIT_LOGS.key_subject, user_id):
            return True
    except Exception:  # our key schema not registered yet (registry away): decode instead
        logger.warning("audit.logs key not encoded for comparison", exc_info=True)
    return _key_user(ctx, key) == user_id


def stray_updates(rejected: Rejected) -> Accepted:
    """The posture updates and risk signals among ``rejected`` that only their key broke:
    dead-lettered all the same, they still reach the live sessions they name."""
    return [(event, exc.event) for event, exc in rejected if isinstance(exc, MisKeyedRecord)
            and exc.event.event_type != "access_request"]


def refusals(ctx: StreamContext, engine: TrustEngine, rejected: Rejected) -> Refused:
    """A DENY for each rejected record whose user or event id can be read (from the record,
    or the user from its key); its decision id comes from the record's log position."""
    out: Refused = []
    for event, exc in rejected:
        msg = event.message
        raw = dict(exc.raw) if isinstance(exc, InvalidAccessRecord) else {}
        if not isinstance(raw.get("user_id"), str):
            raw["user_id"] = _key_user(ctx, msg.key)
        if not (raw.get("user_id") or raw.get("event_id")):
            continue
        details = (exc.rejection.reason, *exc.rejection.errors) if isinstance(
            exc, InvalidAccessRecord) else (exc.reason,)
        decision_id = deterministic_id("invalid", msg.topic, str(msg.partition), str(msg.offset))
        out.append((event, engine.deny_raw(raw, exc.error_kind, *details,
                                           decision_id=decision_id)))
    return out


def _key_user(ctx: StreamContext, key: bytes | None) -> Any:
    try:
        return ctx.wire.decode(AUDIT_LOGS.key_subject, key)
    except Exception:  # an unreadable key names nobody
        return None


def engine_from_settings(ctx: StreamContext) -> TrustEngine:
    """The engine over ``DHARMA_WORKER_POLICY_DIR`` (default: the packaged policies),
    configured by ``DHARMA_TRUST_*``."""
    settings = ctx.settings
    policy_dir = settings.worker.policy_dir or default_policy_dir()
    return TrustEngine(load_policy_set(policy_dir), TrustConfig.from_settings(settings.trust))


def register(app: faust.App, ctx: StreamContext, audit: AuditSink,
             sessions: SessionStore[Session],
             engine: TrustEngine | None = None) -> faust.types.AgentT:
    """Add the trust agent and its tables to ``app``, writing to ``audit`` and ``sessions``."""
    worker = ctx.settings.worker
    pipeline = TrustPipeline(app, ctx, engine or engine_from_settings(ctx), audit, sessions)
    source = raw_topic(app, AUDIT_LOGS)
    config = pipeline.engine.config
    logger.info("trust policies version=%s count=%d timezone=%s internal_networks=%s",
                pipeline.engine.policies.version, len(pipeline.engine.policies),
                config.timezone, ",".join(config.internal_networks))

    @app.agent(source, name="trust-decide")
    async def trust_decide(stream: faust.StreamT) -> None:
        """Decide audit.logs access requests; revoke sessions on posture/risk updates."""
        batches = stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
            worker.batch_size, within=worker.batch_within_s)
        async for events in batches:
            await pipeline.ctx.wire.resolve(  # keys are decoded when not in our encoding
                chain((e.message.value for e in events), (e.message.key for e in events)))
            accepted, rejected = check_events(pipeline.ctx, events)
            await send_dead_letters(pipeline.ctx, pipeline.dlq, rejected)
            refused = refusals(pipeline.ctx, pipeline.engine, rejected)
            stray = stray_updates(rejected)
            if accepted or refused or stray:
                await pipeline.process(accepted, refused, stray)
            await pipeline.ctx.emitter.flush()  # outputs acknowledged before the batch is

    return trust_decide
