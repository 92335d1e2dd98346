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

from dharma.agents.anomaly.codec import CheckpointCodec, SeriesState
from dharma.agents.anomaly.logic import SeriesDetector
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import CheckpointedTable, checkpoint_table
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.topics import METRICS_RAW

__all__ = ["DetectorStore", "SeriesState", "detector_table"]


def detector_table(app: faust.App) -> faust.Table:
    """Checkpoints per series, co-partitioned with ``metrics.raw``."""
    return checkpoint_table(
        app, "detectors", partitions=METRICS_RAW.partitions,
        help="Anomaly detector and alert state per series (checkpoints).")


class DetectorStore(CheckpointedTable[SeriesState]):
    """Live detectors per series, checkpointed to ``table`` every ``checkpoint_every_s``."""

    def __init__(self, writer: TableWriter, factory: Callable[[], SeriesDetector],
                 checkpoint_every_s: float = 10.0, idle_ttl_s: float = 6 * 3600,
                 metrics: PipelineMetrics | None = None) -> None:
        codec = CheckpointCodec(factory)
        super().__init__(writer, codec.encode, codec.decode, lambda: SeriesState(factory()),
                         every_s=checkpoint_every_s, idle_ttl_s=idle_ttl_s, metrics=metrics)
