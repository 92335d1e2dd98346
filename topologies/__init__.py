"""Topologies: which agents, tables and topics run in a worker.

A topology is a factory ``build(settings, metrics) -> faust.App`` with no side
effects at import; scaling out is running more workers of a topology on more
partitions.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

import faust

from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import Settings

Builder = Callable[[Settings, PipelineMetrics | None], faust.App]

#: Topology name → module under ``dharma.topologies`` holding its ``build``.
TOPOLOGIES: dict[str, str] = {
    "ingest": "ingest",
    "trust": "trust",
    "anomaly": "anomaly",
}


def get_topology(name: str) -> Builder:
    """The ``build`` function of topology ``name``."""
    try:
        module = TOPOLOGIES[name]
    except KeyError:
        raise KeyError(f"unknown topology {name!r}; choose from {', '.join(TOPOLOGIES)}") from None
    builder: Builder = import_module(f"dharma.topologies.{module}").build
    return builder


__all__ = ["TOPOLOGIES", "get_topology"]
