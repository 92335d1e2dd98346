"""Anomaly detection capability: one online detector per (source, metric) series; the
batch step is :class:`BatchStep`."""

from __future__ import annotations

from dharma.agents.anomaly.logic import (
    ANOMALY_THRESHOLD,
    BatchStep,
    DetectorConfig,
    MemoryStates,
    Observation,
    ScoreDetail,
    SeriesDetector,
    is_anomaly,
    make_detector,
)

__all__ = [
    "ANOMALY_THRESHOLD",
    "BatchStep",
    "DetectorConfig",
    "MemoryStates",
    "Observation",
    "ScoreDetail",
    "SeriesDetector",
    "is_anomaly",
    "make_detector",
]
