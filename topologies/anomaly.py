"""Topology ``anomaly``: per-series online detection, predictions and alerts."""

from __future__ import annotations

import faust

from dharma.agents.anomaly import agent as anomaly
from dharma.streams.app import make_app
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import Settings


def build(settings: Settings, metrics: PipelineMetrics | None = None) -> faust.App:
    """A worker app scoring ``metrics.raw`` into ``ml.predictions`` and alerts."""
    app, ctx = make_app(settings, "anomaly", metrics)
    anomaly.register(app, ctx)
    return app
