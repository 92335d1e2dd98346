"""Detector state per series: live in memory, checkpointed to a changelog-backed table.

Writing a detector (a few KB) to the changelog on every sample would cost more
than scoring it, so each series is checkpointed at most every
``checkpoint_every_s`` seconds, and at once whenever its alert state changes
(so a restart never re-fires an episode).  After a crash a series resumes from
its last checkpoint: no new warm-up, at most a few seconds of learning replayed.

Checkpoints are versioned plain data (:mod:`dharma.agents.anomaly.codec`),
validated on read; whoever can write the changelog topic can at worst make a
series warm up afresh (counted in ``dharma_checkpoints_rejected_total``).
"""

from __future__ import annotations

from collections.abc import Callable

import faust
from faust.types import EventT

from dharma.agents.anomaly.codec import CheckpointCodec
from dharma.agents.anomaly.logic import (
    DetectorConfig,
    Sample,
    ScoreDetail,
    SeriesDetector,
    SeriesState,
    observe,
)
from dharma.streams.app import StreamContext
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import CheckpointedTable, checkpoint_table
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.topics import METRICS_RAW

__all__ = ["DetectorStore", "SeriesState", "detector_store", "detector_table"]


def detector_table(app: faust.App) -> faust.Table:
    """Checkpoints per series, co-partitioned with ``metrics.raw``."""
    return checkpoint_table(
        app, "detectors", partitions=METRICS_RAW.partitions,
        help="Anomaly detector and alert state per series (checkpoints).")


def _warm(state: SeriesState) -> bool:
    return not state.detector.warming_up


class DetectorStore(CheckpointedTable[SeriesState]):
    """Live detectors per series, checkpointed to ``table`` every ``checkpoint_every_s``.

    At most ``max_series`` are held: beyond it the least recently used series still
    warming up is forgotten first (it has least to lose, and a flood of one-sample
    series only churns among those), then the least recently used warm one.  A series
    forgotten, idle or over the cap, goes through ``on_evict`` first (the agent sends
    the ``resolved`` alert of its open episode).
    """

    def __init__(self, writer: TableWriter, factory: Callable[[], SeriesDetector],
                 checkpoint_every_s: float = 10.0, idle_ttl_s: float = 6 * 3600,
                 max_series: int = 50_000,
                 on_evict: Callable[[str, SeriesState], None] | None = None,
                 metrics: PipelineMetrics | None = None) -> None:
        codec = CheckpointCodec(factory)
        super().__init__(writer, codec.encode, codec.decode, lambda: SeriesState(factory()),
                         every_s=checkpoint_every_s, idle_ttl_s=idle_ttl_s,
                         max_keys=max_series, established=_warm, on_evict=on_evict,
                         metrics=metrics)
        self.new_detector = factory

    def observe(self, series: str, event: EventT,
                x: Sample) -> tuple[SeriesState, ScoreDetail]:
        """Score, then learn, sample ``x`` of ``series`` (:func:`~.logic.observe`); its
        state and the score."""
        state = self.get(series, event)
        return state, observe(state, x, self.new_detector, series)


def detector_store(app: faust.App, ctx: StreamContext,
                   on_evict: Callable[[str, SeriesState], None]) -> DetectorStore:
    """The worker's detector store (``DHARMA_WORKER_*``: checkpoint period, idle TTL,
    series cap), its changelog records queued on ``ctx.emitter``."""
    worker = ctx.settings.worker
    return DetectorStore(TableWriter(detector_table(app), ctx.emitter), DetectorConfig().build,
                         checkpoint_every_s=worker.checkpoint_every_s,
                         idle_ttl_s=worker.series_idle_ttl_s, max_series=worker.max_series,
                         on_evict=on_evict, metrics=ctx.metrics)
