"""Validation of ``metrics.raw``: dead letters, rolling statistics, the PostgreSQL sink."""

from dharma.agents.validation.logic import SeriesStats, fold, fold_batch

__all__ = ["SeriesStats", "fold", "fold_batch"]
