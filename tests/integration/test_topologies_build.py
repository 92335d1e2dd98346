"""Topologies build side by side in one process, each counting into its own registry;
a topology whose agent consumes other topics than declared does not build, nor one
giving the trust agent a session store that forgets sessions sooner than its engine."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from dharma.agents.trust import agent as trust_agent
from dharma.agents.trust.session import Session
from dharma.sinks.audit import AuditSink
from dharma.sinks.sessions import SessionStore
from dharma.streams.app import StreamContext, raw_topic
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.topics import AUDIT_LOGS, METRICS_RAW
from dharma.topologies import TOPOLOGIES, Capability, Topology, TopologyError, trust

pytestmark = pytest.mark.integration


def _agent_names(app: faust.App) -> list[str]:
    return sorted(agent.name.rsplit(".", 1)[-1] for agent in app.agents.values())


def test_every_topology_builds_in_one_process_with_its_own_registry(settings: Any) -> None:
    registries = {name: CollectorRegistry() for name in [*TOPOLOGIES, "ingest-again"]}
    apps = {name: TOPOLOGIES[name.removesuffix("-again")](settings).build(
        PipelineMetrics(registry)) for name, registry in registries.items()}
    assert {name: _agent_names(app) for name, app in apps.items()} == {
        "ingest": ["validate-metrics"], "anomaly": ["detect-anomalies"],
        "trust": ["trust-decide"], "cmdb": ["cmdb"],
        "executor": ["execute-remediations"], "healing": ["healing"],
        "cost": ["cost", "cost-bills", "cost-usage"], "ingest-again": ["validate-metrics"]}
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


def test_a_session_store_shorter_lived_than_the_engine_says_does_not_build(
        settings: Any) -> None:
    value = trust(settings)
    (decide,) = value.capabilities
    audit, sessions = decide.sinks
    assert isinstance(audit, AuditSink) and isinstance(sessions, SessionStore)
    short = SessionStore(settings.redis.url.get_secret_value(), Session.from_dict,
                         ttl_s=1, guard_s=sessions.guard_s)
    register = partial(trust_agent.register, audit=audit, sessions=short)
    forgetful = replace(value, capabilities=(
        replace(decide, sinks=(audit, short), register=register),))
    with pytest.raises(ValueError, match="TTL and replay guard are not the engine's"):
        forgetful.build(PipelineMetrics(CollectorRegistry()))
