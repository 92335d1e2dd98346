"""Tables of the validation agent."""

from __future__ import annotations

from collections.abc import Sequence

import faust
from faust.types import EventT

from dharma.agents.validation.logic import DEFAULT_ALPHA, SeriesStats, fold
from dharma.streams.changelog import TableWriter
from dharma.streams.records import MetricSample
from dharma.streams.topics import METRICS_RAW


def series_stats_table(app: faust.App) -> faust.Table:
    """Rolling statistics per series (``source|metric``), changelog-backed.

    Co-partitioned with ``metrics.raw`` (keyed by source), so a series' state
    lives on the partition its samples arrive on.
    """
    return app.Table(  # type: ignore[return-value]  # Faust types it as TableT
        "series-stats", default=None, key_type=str,
        partitions=METRICS_RAW.partitions,
        help="Per-series count, EWMA mean/variance, last value and timestamp.",
    )


def update_series_stats(
    stats: TableWriter, accepted: Sequence[tuple[EventT, MetricSample]],
    alpha: float = DEFAULT_ALPHA,
) -> None:
    """Fold a batch into the stats table: one changelog write per series per batch."""
    by_series: dict[str, list[tuple[EventT, MetricSample]]] = {}
    for event, sample in accepted:
        by_series.setdefault(sample.series, []).append((event, sample))
    for series, items in by_series.items():
        before = SeriesStats.from_dict(stats.table.get(series))
        after = fold(before, ((s.value, s.ts) for _, s in items), alpha)
        if after != before:
            stats.set(series, after.to_dict(), items[-1][0])
