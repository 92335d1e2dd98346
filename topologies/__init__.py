"""Topologies: which capabilities run in a worker, as values built from settings.

Each named topology is a :class:`~dharma.topologies.topology.Topology`: its
capabilities, the sinks they get, the topics they consume and emit, and who
dead-letters each consumed topic (``dharma worker --topology NAME --describe``
prints it).  Building one has no side effects; scaling out is running more
workers of a topology on more partitions.

Each topology answers for its own input: the ingest and anomaly topologies both
read ``metrics.raw`` in their own consumer groups, so a record both reject is
dead-lettered by each (the two dead letters name the same topic, partition and
offset).
"""

from __future__ import annotations

from collections.abc import Callable

from dharma.streams.settings import Settings
from dharma.topologies import capabilities
from dharma.topologies.topology import Capability, Topology, TopologyError

__all__ = ["TOPOLOGIES", "Capability", "Topology", "TopologyError", "anomaly", "cmdb", "cost",
           "executor", "healing", "ingest", "topology", "trust"]


def ingest(settings: Settings) -> Topology:
    """Validation, rolling statistics and the PostgreSQL metrics sink."""
    return Topology("ingest", (capabilities.validation(settings),), settings)


def anomaly(settings: Settings) -> Topology:
    """Per-series online detection, predictions and alerts; the only capability of its
    topology on ``metrics.raw``, it dead-letters the input it rejects."""
    return Topology("anomaly", (capabilities.anomaly(settings, dead_letters=True),), settings)


def trust(settings: Settings) -> Topology:
    """Zero-trust decisions on ``audit.logs``, the audit trail and live sessions."""
    return Topology("trust", (capabilities.trust(settings),), settings)


def cmdb(settings: Settings) -> Topology:
    """The CMDB graph and its change history, from ``infrastructure.events``."""
    return Topology("cmdb", (capabilities.cmdb(settings),), settings)


def executor(settings: Settings) -> Topology:
    """Remediation requests run through an HTTP webhook (``DHARMA_EXECUTOR_*``); it reads
    ``infrastructure.events`` in its own group and dead-letters what it cannot read, as
    the cmdb topology does for its own."""
    return Topology("executor", (capabilities.executor(settings),), settings)


def healing(settings: Settings) -> Topology:
    """Incidents, root cause and guarded remediation, from ``alerts.notifications`` and
    ``infrastructure.events``."""
    return Topology("healing", (capabilities.healing(settings),), settings)


def cost(settings: Settings) -> Topology:
    """Cost accrual per asset and window from ``infrastructure.events``, utilisation from
    ``metrics.raw``, and providers' bills (FOCUS) from ``billing.focus``, in its own
    consumer group."""
    return Topology("cost", (capabilities.cost(settings), capabilities.usage(settings),
                             capabilities.billing(settings)), settings)


#: Topology name → its factory.
TOPOLOGIES: dict[str, Callable[[Settings], Topology]] = {
    "ingest": ingest, "anomaly": anomaly, "trust": trust, "cmdb": cmdb, "healing": healing,
    "executor": executor, "cost": cost,
}


def topology(name: str, settings: Settings) -> Topology:
    """Topology ``name`` built from ``settings``."""
    try:
        factory = TOPOLOGIES[name]
    except KeyError:
        raise TopologyError(
            f"unknown topology {name!r}; choose from {', '.join(TOPOLOGIES)}") from None
    return factory(settings)
