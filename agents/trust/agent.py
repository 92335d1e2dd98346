"""Zero-trust agent on ``audit.logs`` (Faust wiring only).

Per batch: decode and validate (:mod:`~dharma.agents.trust.intake`: rejected
records are dead-lettered and, when they name someone, decided DENY); the valid
records go through :class:`~dharma.agents.trust.pipeline.TrustPipeline`: the
batch step (:class:`~dharma.agents.trust.logic.TrustStep`) decides against the
worker's clock, then audit (committed before any session opens), open
sessions, re-evaluate live sessions, emit.  Outputs are awaited before the
batch is acknowledged (at-least-once; all writes idempotent).
"""

from __future__ import annotations

import logging
from itertools import chain

import faust

from dharma.agents.trust.config import TrustConfig
from dharma.agents.trust.engine import TrustEngine
from dharma.agents.trust.index import default_policy_dir, load_policy_set
from dharma.agents.trust.intake import check_access_events, refusals, stray_updates
from dharma.agents.trust.pipeline import TrustPipeline
from dharma.agents.trust.session import Session
from dharma.sinks.audit import AuditSink
from dharma.sinks.sessions import SessionStore
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.topics import AUDIT_LOGS

__all__ = ["engine_from_settings", "register"]

logger = logging.getLogger(__name__)


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
            accepted, rejected = check_access_events(pipeline.ctx, events)
            await send_dead_letters(pipeline.ctx, pipeline.dlq, rejected)
            refused = refusals(pipeline.ctx, pipeline.engine, rejected)
            stray = stray_updates(rejected)
            if accepted or refused or stray:
                await pipeline.process(accepted, refused, stray)
            await pipeline.ctx.emitter.flush()  # outputs acknowledged before the batch is

    return trust_decide
