"""Anomaly agent on ``metrics.raw``: score every sample, emit predictions and alerts."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import psycopg
from faust.types import TP

from dharma.agents.anomaly.alerts import KIND, AlertPolicy
from dharma.agents.anomaly.logic import (
    DetectorConfig,
    ScoreDetail,
    close_idle_episode,
    follow_episode,
    is_anomaly,
)
from dharma.agents.anomaly.silences import Silence, is_silenced, load_active
from dharma.agents.anomaly.state import DetectorStore, SeriesState, detector_table
from dharma.agents.validation.agent import check_events
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.changelog import TableWriter
from dharma.streams.records import MetricSample, now_ms
from dharma.streams.topics import ALERTS, METRICS_RAW, PREDICTIONS

logger = logging.getLogger(__name__)

MODEL = "dharma-likelihood/1"
#: Due detector checkpoints written per batch at most (one costs ~40 µs to encode).
CHECKPOINTS_PER_BATCH = 50
CHECKPOINT_FLUSH_TIMEOUT_S = 5.0
PREDICTION_BRANCH = "dharma.predictions.AnomalyPrediction"


def prediction(sample: MetricSample, detail: ScoreDetail) -> tuple[str, dict[str, Any]]:
    """The ``ml.predictions`` record for one scored sample (union branch, value)."""
    ready = detail.state == "ready"
    return PREDICTION_BRANCH, {
        "kind": KIND, "prediction_id": f"{sample.series}@{sample.ts}",
        "source": sample.source, "metric": sample.metric, "ts": sample.ts,
        "value": sample.value, "model": MODEL, "anomaly_score": float(detail.score),
        "is_anomaly": ready and is_anomaly(detail.score),
        "warming_up": detail.state == "warming_up", "confidence": float(detail.confidence),
        "expected": detail.expected if detail.expected == detail.expected else None,  # NaN
    }


class Silences:
    """Active silences, re-read from PostgreSQL by a timer; kept on errors."""

    def __init__(self, dsn: str) -> None:
        self.dsn, self.active = dsn, list[Silence]()

    async def refresh(self) -> None:
        try:
            async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                self.active = await load_active(conn)
        except psycopg.Error as exc:
            logger.warning("silences not refreshed: %r", exc)


def register(app: faust.App, ctx: StreamContext, dead_letters: bool) -> faust.types.AgentT:
    """Add the anomaly agent, its detector table and its timers to ``app``; with
    ``dead_letters``, it sends rejected input to ``metrics.raw.dlq`` (else another
    capability of its topology does)."""
    worker = ctx.settings.worker
    source, emit = raw_topic(app, METRICS_RAW), ctx.emitter.emit
    dlq = raw_topic(app, METRICS_RAW.dlq) if dead_letters else None
    policy = AlertPolicy(repeat_interval_ms=round(worker.alert_repeat_interval_s * 1000),
                         resolve_after=worker.alert_resolve_after,
                         resolve_after_ms=round(worker.alert_resolve_after_s * 1000))
    silences = Silences(ctx.settings.postgres.dsn.get_secret_value())

    def resolve_evicted(series: str, state: SeriesState) -> None:
        """A series forgotten with an open episode: send its ``resolved`` alert first."""
        alert = close_idle_episode(series, state.alert, policy)
        if alert is None and state.alert.firing_since is not None:
            logger.warning("open episode of evicted series=%s names another series: "
                           "not resolved", series)
        if alert and not is_silenced(silences.active, alert["source"],
                                     alert["labels"]["metric"], KIND, now_ms()):
            emit(ALERTS.name, ctx.wire.encode(ALERTS.key_subject, alert["fingerprint"]),
                 ctx.wire.encode(ALERTS.value_subject, alert))
            logger.info("resolved the open episode of evicted series=%s", series)

    store = DetectorStore(TableWriter(detector_table(app), ctx.emitter), DetectorConfig().build,
                          checkpoint_every_s=worker.checkpoint_every_s,
                          idle_ttl_s=worker.series_idle_ttl_s, max_series=worker.max_series,
                          on_evict=resolve_evicted, metrics=ctx.metrics)

    def score(samples: list[Any]) -> tuple[list[Any], list[dict[str, Any]]]:
        predictions, alerts, changed = [], [], set()
        for event, sample in samples:
            state, detail = store.observe(sample.series, event,
                                          {"value": sample.value, "timestamp": sample.ts})
            branch, record = prediction(sample, detail)
            predictions.append((sample.series, (branch, record)))
            state.alert, alert = follow_episode(state.alert, policy, sample.source,
                                                sample.metric, sample.ts, detail)
            if alert:
                changed.add(sample.series)
                if not is_silenced(silences.active, sample.source, sample.metric, KIND, now_ms()):
                    alerts.append(alert)
        store.checkpoint(force=changed, limit=CHECKPOINTS_PER_BATCH)
        return predictions, alerts

    async def flush_checkpoints() -> None:
        # Bounded: a producer that does not drain must not stall the stream; a lost
        # checkpoint costs at most a repeated alert, with the same alert_id.
        try:
            await asyncio.wait_for(ctx.emitter.flush(), timeout=CHECKPOINT_FLUSH_TIMEOUT_S)
        except TimeoutError:
            logger.warning("checkpoints not flushed within %.0fs; sending alerts anyway",
                           CHECKPOINT_FLUSH_TIMEOUT_S)

    @app.agent(source, name="detect-anomalies")
    async def detect_anomalies(stream: faust.StreamT) -> None:
        """Score each metrics.raw sample; emit ml.predictions and alerts.notifications."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
                worker.batch_size, within=worker.batch_within_s):
            await ctx.resolve_schemas(events)
            accepted, rejected = check_events(ctx, events)
            if dlq is not None:
                await send_dead_letters(ctx, dlq, rejected)
            predictions, alerts = score(accepted)
            if alerts:  # the episode's checkpoint should reach the broker before its alert
                await flush_checkpoints()
            for key, value in predictions:
                emit(PREDICTIONS.name, ctx.wire.encode_key(PREDICTIONS.key_subject, key),
                     ctx.wire.encode(PREDICTIONS.value_subject, value))
            for alert in alerts:
                emit(ALERTS.name, ctx.wire.encode(ALERTS.key_subject, alert["fingerprint"]),
                     ctx.wire.encode(ALERTS.value_subject, alert))
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
        await flush_checkpoints()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's Signal typing
    async def forget_revoked(app: faust.App, revoked: set[TP], **_: Any) -> None:
        store.release_partitions({tp.partition for tp in revoked
                                  if tp.topic == METRICS_RAW.name})
        await flush_checkpoints()  # before the next owner (or this worker's restart) reads them

    return detect_anomalies
