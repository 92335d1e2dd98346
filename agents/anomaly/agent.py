"""Anomaly agent on ``metrics.raw`` (Faust wiring only): score every sample with the
batch step (:class:`~dharma.agents.anomaly.logic.BatchStep`), emit predictions and
alerts; timers refresh silences and forget idle series."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.types import TP

from dharma.agents.anomaly.logic import BatchStep, Observation, Scored, SeriesState, alert_policy
from dharma.agents.anomaly.state import detector_store
from dharma.sinks.silences import SilenceReader
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.intake import check_metrics
from dharma.streams.records import now_ms
from dharma.streams.topics import ALERTS, METRICS_RAW, PREDICTIONS

logger = logging.getLogger(__name__)

#: Due detector checkpoints written per batch at most (one costs ~40 µs to encode).
CHECKPOINTS_PER_BATCH = 50
CHECKPOINT_FLUSH_TIMEOUT_S = 5.0


def register(app: faust.App, ctx: StreamContext, silences: SilenceReader,
             dead_letters: bool) -> faust.types.AgentT:
    """Add the anomaly agent, its detector table and its timers to ``app``: alerts are
    muted by ``silences`` (refreshed by a timer); with ``dead_letters``, it sends
    rejected input to ``metrics.raw.dlq`` (else another capability of its topology
    does)."""
    worker = ctx.settings.worker
    dlq = raw_topic(app, METRICS_RAW.dlq) if dead_letters else None

    def resolve_evicted(series: str, state: SeriesState) -> None:
        if alert := score.evicted(series, state, silences.active, now_ms()):
            _emit(ctx, Scored(alerts=[alert]))

    store = detector_store(app, ctx, on_evict=resolve_evicted)
    score = BatchStep(store, store.new_detector, alert_policy(worker))

    @app.agent(raw_topic(app, METRICS_RAW), name="detect-anomalies")
    async def detect_anomalies(stream: faust.StreamT) -> None:
        """Score each metrics.raw sample; emit ml.predictions and alerts.notifications."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
                worker.batch_size, within=worker.batch_within_s):
            await ctx.resolve_schemas(events)
            accepted, rejected = check_metrics(ctx, events)
            if dlq is not None:
                await send_dead_letters(ctx, dlq, rejected)
            scored = score(((e, Observation.of(s)) for e, s in accepted),
                           silences.active, now_ms())
            store.checkpoint(force=scored.changed, limit=CHECKPOINTS_PER_BATCH)
            if scored.alerts:  # the episode's checkpoint should reach the broker before its alert
                await _flush_bounded(ctx)
            _emit(ctx, scored)
            await ctx.emitter.flush()

    @app.timer(5.0)
    async def refresh_silences() -> None:
        await silences.refresh()

    @app.timer(min(60.0, max(1.0, worker.series_idle_ttl_s / 4)))
    async def evict_idle_series() -> None:
        if evicted := store.evict_idle():
            logger.info("evicted idle series count=%d", evicted)
            await ctx.emitter.flush()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode's Signal typing
    async def checkpoint_at_shutdown(app: faust.App, **_: Any) -> None:
        # Faust sends this once the agents are idle, before the final offset commit, and
        # sends no revocation on a graceful stop.
        logger.info("checkpointed at shutdown count=%d", store.checkpoint_all())
        await _flush_bounded(ctx)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's Signal typing
    async def forget_revoked(app: faust.App, revoked: set[TP], **_: Any) -> None:
        store.release_partitions({tp.partition for tp in revoked
                                  if tp.topic == METRICS_RAW.name})
        await _flush_bounded(ctx)  # before the next owner (or this worker's restart) reads them

    return detect_anomalies


def _emit(ctx: StreamContext, scored: Scored) -> None:
    emit, wire = ctx.emitter.emit, ctx.wire
    for key, value in scored.predictions:
        emit(PREDICTIONS.name, wire.encode_key(PREDICTIONS.key_subject, key),
             wire.encode(PREDICTIONS.value_subject, value))
    for alert in scored.alerts:
        emit(ALERTS.name, wire.encode(ALERTS.key_subject, alert["fingerprint"]),
             wire.encode(ALERTS.value_subject, alert))


async def _flush_bounded(ctx: StreamContext) -> None:
    # Bounded: a producer that does not drain must not stall the stream; a lost
    # checkpoint costs at most a repeated alert, with the same alert_id.
    try:
        await asyncio.wait_for(ctx.emitter.flush(), timeout=CHECKPOINT_FLUSH_TIMEOUT_S)
    except TimeoutError:
        logger.warning("checkpoints not flushed within %.0fs; sending alerts anyway",
                       CHECKPOINT_FLUSH_TIMEOUT_S)
