"""Topologies build side by side in one process, each counting into its own registry,
and a topology whose agent consumes other topics than declared does not build."""

from __future__ import annotations

from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from dharma.streams.app import StreamContext, raw_topic
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.topics import AUDIT_LOGS, METRICS_RAW
from dharma.topologies import TOPOLOGIES, Capability, Topology, TopologyError

pytestmark = pytest.mark.integration


def _agent_names(app: faust.App) -> list[str]:
    return sorted(agent.name.rsplit(".", 1)[-1] for agent in app.agents.values())


def test_every_topology_builds_in_one_process_with_its_own_registry(settings: Any) -> None:
    registries = {name: CollectorRegistry() for name in [*TOPOLOGIES, "ingest-again"]}
    apps = {name: TOPOLOGIES[name.removesuffix("-again")](settings).build(
        PipelineMetrics(registry)) for name, registry in registries.items()}
    assert {name: _agent_names(app) for name, app in apps.items()} == {
        "ingest": ["validate-metrics"], "anomaly": ["detect-anomalies"],
        "trust": ["trust-decide"], "ingest-again": ["validate-metrics"]}
    assert apps["ingest"].conf.id == apps["ingest-again"].conf.id == \
        f"{settings.worker.app_id}-ingest"
    for registry in registries.values():
        names = {metric.name for metric in registry.collect()}
        assert {"dharma_events_in", "dharma_dead_lettered", "dharma_sink_rows"} <= names


def test_an_agent_on_another_topic_than_declared_does_not_build(settings: Any) -> None:
    def register(app: faust.App, ctx: StreamContext) -> faust.types.AgentT:
        async def read(stream: faust.StreamT) -> None:
            async for _ in stream:
                pass
        return app.agent(raw_topic(app, AUDIT_LOGS), name="misdeclared")(read)

    value = Topology("misdeclared", (Capability(
        "misdeclared", consumes=(METRICS_RAW,), dead_letters=(METRICS_RAW,),
        register=register),), settings)
    with pytest.raises(TopologyError, match=r"consumes audit\.logs, not metrics\.raw"):
        value.build(PipelineMetrics(CollectorRegistry()))
