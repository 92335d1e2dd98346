"""Topology ``ingest``: validation, rolling statistics and the PostgreSQL metrics sink."""

from __future__ import annotations

import faust

from dharma.agents.validation import agent as validation
from dharma.streams.app import make_app
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import Settings


def build(settings: Settings, metrics: PipelineMetrics | None = None) -> faust.App:
    """A worker app running the validation chain on ``metrics.raw``."""
    app, ctx = make_app(settings, "ingest", metrics)
    validation.register(app, ctx)
    return app
