"""Topology ``trust``: zero-trust decisions on ``audit.logs``, audit trail, live sessions."""

from __future__ import annotations

import faust

from dharma.agents.trust import agent as trust
from dharma.streams.app import make_app
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import Settings


def build(settings: Settings, metrics: PipelineMetrics | None = None) -> faust.App:
    """A worker app running the trust agent (policies from ``DHARMA_WORKER_POLICY_DIR``)."""
    app, ctx = make_app(settings, "trust", metrics)
    trust.register(app, ctx)
    return app
