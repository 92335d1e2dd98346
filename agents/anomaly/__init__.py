"""Anomaly detection capability: one online detector per (source, metric) series."""

from __future__ import annotations

from dharma.agents.anomaly.logic import (
    ANOMALY_THRESHOLD,
    DetectorConfig,
    ScoreDetail,
    SeriesDetector,
    is_anomaly,
    make_detector,
)

__all__ = [
    "ANOMALY_THRESHOLD",
    "DetectorConfig",
    "ScoreDetail",
    "SeriesDetector",
    "is_anomaly",
    "make_detector",
]
