"""Building blocks of the per-series anomaly detector."""

from __future__ import annotations

from dharma.agents.anomaly.model.baseline import SeasonalBaseline
from dharma.agents.anomaly.model.detector import ANOMALY_THRESHOLD, ScoreDetail, SeriesDetector
from dharma.agents.anomaly.model.episode import Episode
from dharma.agents.anomaly.model.extremes import RecentRange
from dharma.agents.anomaly.model.histogram import ValueHistogram
from dharma.agents.anomaly.model.likelihood import AnomalyLikelihood, log_tail
from dharma.agents.anomaly.model.timebase import Cadence, to_seconds

__all__ = [
    "ANOMALY_THRESHOLD",
    "AnomalyLikelihood",
    "Cadence",
    "Episode",
    "RecentRange",
    "ScoreDetail",
    "SeasonalBaseline",
    "SeriesDetector",
    "ValueHistogram",
    "log_tail",
    "to_seconds",
]
