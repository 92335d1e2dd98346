"""Validation of ``metrics.raw``: dead letters, rolling statistics, the PostgreSQL sink."""

from dharma.agents.validation.logic import SeriesStats, fold

__all__ = ["SeriesStats", "fold"]
