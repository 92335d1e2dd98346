"""Validation agent on ``metrics.raw`` (Faust wiring only).

Per batch: decode and validate (bad input is dead-lettered), store the samples
in PostgreSQL (held, partitions paused, while it is away: see
:mod:`~dharma.streams.backpressure`), and only then fold the stored samples into
the rolling statistics, so they never count a sample the table does not hold.
The fold is idempotent under replay too (a sample not newer than its series'
last one does not move them).
"""

from __future__ import annotations

import faust
from faust.types import EventT

from dharma.agents.validation.state import series_stats, update_series_stats
from dharma.sinks.base import SinkUnavailable
from dharma.sinks.postgres import PostgresMetricsSink
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.backpressure import Backpressure
from dharma.streams.errors import ContractViolation, RejectedEvent
from dharma.streams.intake import check_metrics
from dharma.streams.records import MetricSample
from dharma.streams.topics import METRICS_RAW

Stored = list[tuple[EventT, MetricSample]]


def register(app: faust.App, ctx: StreamContext,
             sink: PostgresMetricsSink) -> faust.types.AgentT:
    """Add the validation agent and its stats table to ``app``; samples go to ``sink``."""
    worker = ctx.settings.worker
    source, dlq = raw_topic(app, METRICS_RAW), raw_topic(app, METRICS_RAW.dlq)
    stats = series_stats(app, ctx)
    backpressure = Backpressure.for_worker(lambda: app.consumer, [source.get_topic_name()],
                                           ctx.metrics, worker, retry_on=SinkUnavailable)

    async def store(accepted: Stored) -> Stored:
        """Write the samples (held while PostgreSQL is away); those now stored.  Nothing
        is stored when the hold gives up: the batch is dead-lettered as ``sink_error``."""
        batch = [sample for _, sample in accepted]
        try:
            rows = await backpressure.hold(sink.name, lambda: sink.flush(batch))
        except SinkUnavailable as exc:
            failed = RejectedEvent("sink_error", str(exc))
            await send_dead_letters(ctx, dlq, [(event, failed) for event, _ in accepted])
            return []
        ctx.metrics.sink_rows.labels(sink.name).inc(rows)
        if rows == len(batch):
            return accepted
        return await drop_conflicts(accepted, batch)

    async def drop_conflicts(accepted: Stored, batch: list[MetricSample]) -> Stored:
        """Samples stored already (replays, or another value first): those stored with
        another value are dead-lettered; the others count as stored."""
        try:
            conflicts = dict(await backpressure.hold(
                sink.name, lambda: sink.call(lambda: sink.conflicting(batch))))
        except SinkUnavailable as exc:  # stored, but unchecked: a redrive checks them
            unchecked = RejectedEvent("sink_error", f"stored, not checked for conflicts: {exc}")
            await send_dead_letters(ctx, dlq, [(event, unchecked) for event, _ in accepted])
            return accepted
        await send_dead_letters(ctx, dlq, [
            (accepted[i][0], ContractViolation(
                f"conflict: {batch[i].series}@{batch[i].ts} is stored with value "
                f"{stored!r}, this sample says {batch[i].value!r}"))
            for i, stored in conflicts.items()])
        return [item for i, item in enumerate(accepted) if i not in conflicts]

    @app.agent(source, name="validate-metrics")
    async def validate_metrics(stream: faust.StreamT) -> None:
        """Validate metrics.raw, store samples in PostgreSQL, then fold what was stored into
        the rolling stats per series."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
                worker.batch_size, within=worker.batch_within_s):
            await ctx.resolve_schemas(events)
            accepted, rejected = check_metrics(ctx, events)
            await send_dead_letters(ctx, dlq, rejected)
            update_series_stats(stats, await store(accepted))
            await ctx.emitter.flush()

    return validate_metrics
