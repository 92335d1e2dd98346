"""Validation agent on ``metrics.raw`` (Faust wiring only)."""

from __future__ import annotations

import faust
from faust.types import EventT

from dharma.agents.validation.state import series_stats, update_series_stats
from dharma.sinks.base import SinkUnavailable
from dharma.sinks.postgres import PostgresMetricsSink
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.errors import ContractViolation, RejectedEvent
from dharma.streams.intake import check_metrics
from dharma.streams.records import MetricSample
from dharma.streams.topics import METRICS_RAW


def register(app: faust.App, ctx: StreamContext,
             sink: PostgresMetricsSink) -> faust.types.AgentT:
    """Add the validation agent and its stats table to ``app``; samples go to ``sink``."""
    worker = ctx.settings.worker
    source, dlq = raw_topic(app, METRICS_RAW), raw_topic(app, METRICS_RAW.dlq)
    stats = series_stats(app, ctx)

    async def store(accepted: list[tuple[EventT, MetricSample]]) -> None:
        batch = [sample for _, sample in accepted]
        try:
            rows = await sink.flush(batch)
            ctx.metrics.sink_rows.labels(sink.name).inc(rows)
            if rows < len(batch):  # replays, or samples another value got to first
                conflicts = await sink.call(lambda: sink.conflicting(batch))
                await send_dead_letters(ctx, dlq, [
                    (accepted[i][0], ContractViolation(
                        f"conflict: {batch[i].series}@{batch[i].ts} is stored with value "
                        f"{stored!r}, this sample says {batch[i].value!r}"))
                    for i, stored in conflicts])
        except SinkUnavailable as exc:
            failed = RejectedEvent("sink_error", str(exc))
            await send_dead_letters(ctx, dlq, [(event, failed) for event, _ in accepted])

    @app.agent(source, name="validate-metrics")
    async def validate_metrics(stream: faust.StreamT) -> None:
        """Validate metrics.raw, keep rolling stats per series, store samples in PostgreSQL."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
                worker.batch_size, within=worker.batch_within_s):
            await ctx.resolve_schemas(events)
            accepted, rejected = check_metrics(ctx, events)
            await send_dead_letters(ctx, dlq, rejected)
            update_series_stats(stats, accepted)
            await store(accepted)
            await ctx.emitter.flush()

    return validate_metrics
