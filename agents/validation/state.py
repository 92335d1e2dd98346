"""Tables of the validation agent."""

from __future__ import annotations

from collections.abc import Sequence

import faust
from faust.types import EventT

from dharma.agents.validation.logic import DEFAULT_ALPHA, SeriesStats, fold_batch
from dharma.streams.app import StreamContext
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import TypedTable, checkpoint_table
from dharma.streams.errors import BrokenCheckpoint
from dharma.streams.records import MetricSample, now_ms
from dharma.streams.topics import METRICS_RAW

__all__ = ["SERIES_STATS_TABLE", "series_stats", "update_series_stats"]

SERIES_STATS_TABLE = "series-stats"


def series_stats(app: faust.App, ctx: StreamContext) -> TypedTable[SeriesStats]:
    """Rolling statistics per series (``source|metric``), changelog-backed.

    Co-partitioned with ``metrics.raw`` (keyed by source), so a series' state
    lives on the partition its samples arrive on.  A record read back must hold
    valid statistics (:meth:`SeriesStats.from_dict`) whose last sample is not
    later than a sample may be (the worker's ``max_future_skew_s``): a stored
    time far ahead would make every new sample look like a replay.
    """
    skew_ms = int(ctx.settings.worker.max_future_skew_s * 1000)

    def not_ahead(stats: SeriesStats) -> None:
        if stats.last_ts > now_ms() + skew_ms:
            raise ValueError(f"last_ts {stats.last_ts} ahead of the clock")

    table = checkpoint_table(app, SERIES_STATS_TABLE, METRICS_RAW.partitions,
                             help="Per-series count, EWMA mean/variance, last value and time.")
    return TypedTable(TableWriter(table, ctx.emitter), SeriesStats, SeriesStats.to_dict,
                      SeriesStats.empty, ctx.metrics, check=not_ahead)


def update_series_stats(
    stats: TypedTable[SeriesStats], accepted: Sequence[tuple[EventT, MetricSample]],
    alpha: float = DEFAULT_ALPHA,
) -> None:
    """Fold a batch into the stats table (:func:`~.logic.fold_batch`): one changelog write
    per series per batch.  A series whose record is refused (logged and counted) starts
    afresh."""
    def stats_of(series: str) -> SeriesStats:
        try:
            return stats.get(series)
        except BrokenCheckpoint:
            return SeriesStats.empty()

    samples = ((event, s.series, s.value, s.ts) for event, s in accepted)
    for series, after, last in fold_batch(stats_of, samples, alpha):
        stats.set(series, after, last)
