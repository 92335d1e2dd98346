"""Topologies as values: one dead-letter owner per consumed topic, sinks chosen by the
topology, ``dharma worker --describe``, and the docs generated from the values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from dharma.cli import app as cli
from dharma.sinks.audit import AuditSink
from dharma.sinks.postgres import PostgresMetricsSink
from dharma.sinks.sessions import SessionStore
from dharma.sinks.silences import SilenceReader
from dharma.streams.settings import Settings, TrustSettings
from dharma.streams.topics import AUDIT_LOGS, INFRASTRUCTURE_EVENTS, METRICS_RAW
from dharma.topologies import TOPOLOGIES, Capability, Topology, TopologyError, trust

ARCHITECTURE = Path(__file__).resolve().parents[3] / "docs" / "architecture.md"
TOPICS = (METRICS_RAW, AUDIT_LOGS, INFRASTRUCTURE_EVENTS)
topic_sets = st.sets(st.sampled_from(TOPICS)).map(lambda s: tuple(sorted(s, key=TOPICS.index)))


@given(st.lists(st.tuples(topic_sets.filter(bool), topic_sets), min_size=1, max_size=4))
def test_a_topology_is_built_only_when_each_consumed_topic_has_one_dead_letter_owner(
        wiring: list[tuple[tuple, tuple]]) -> None:
    capabilities = tuple(Capability(f"c{i}", consumes=consumes, dead_letters=dead)
                         for i, (consumes, dead) in enumerate(wiring))
    consumed = {t for consumes, _ in wiring for t in consumes}
    answerable = all(set(dead) <= set(consumes) for consumes, dead in wiring)
    owned_once = all(sum(t in dead for _, dead in wiring) == 1 for t in consumed)
    if answerable and owned_once:
        owners = Topology("t", capabilities).dead_letter_owners()
        assert owners.keys() == {t.name for t in consumed}
        assert all(len(names) == 1 for names in owners.values())
    else:
        with pytest.raises(TopologyError, match="topology t: "):
            Topology("t", capabilities)


def test_capability_names_are_unique() -> None:
    twice = Capability("anomaly", consumes=(METRICS_RAW,), dead_letters=(METRICS_RAW,))
    with pytest.raises(TopologyError, match="listed twice: anomaly"):
        Topology("t", (twice, Capability("anomaly", consumes=(AUDIT_LOGS,),
                                         dead_letters=(AUDIT_LOGS,))))


def test_each_named_topology_says_who_dead_letters_its_input() -> None:
    owners = {name: factory(Settings()).dead_letter_owners()
              for name, factory in TOPOLOGIES.items()}
    assert owners == {"ingest": {"metrics.raw": ["validation"]},
                      "anomaly": {"metrics.raw": ["anomaly"]},
                      "trust": {"audit.logs": ["trust"]},
                      "cmdb": {"infrastructure.events": ["cmdb"]},
                      "executor": {"infrastructure.events": ["executor"]},
                      "healing": {"alerts.notifications": ["healing"],
                                  "infrastructure.events": ["healing"]},
                      "cost": {"infrastructure.events": ["cost"], "metrics.raw": ["usage"],
                               "billing.focus": ["billing"]}}


def test_the_topology_gives_each_capability_its_sinks() -> None:
    settings = Settings(trust=TrustSettings(session_ttl_s=600, replay_guard_s=700))
    (ingest,) = TOPOLOGIES["ingest"](settings).capabilities
    assert [type(sink) for sink in ingest.sinks] == [PostgresMetricsSink]
    (decide,) = trust(settings).capabilities
    audit, sessions = decide.sinks
    assert isinstance(audit, AuditSink) and isinstance(sessions, SessionStore)
    assert (sessions.ttl_s, sessions.guard_s) == (600, 700)
    (anomaly,) = TOPOLOGIES["anomaly"](settings).capabilities
    assert [type(store) for store in anomaly.sinks] == [SilenceReader]  # its alert silences


def test_describe_prints_the_topology() -> None:
    table = CliRunner().invoke(cli, ["worker", "--topology", "trust", "--describe"])
    assert table.exit_code == 0, table.output
    assert "topology trust" in table.output
    for cell in ("audit.logs", "redis.sessions", "audit.logs.dlq", "ml.predictions"):
        assert cell in table.output
    markdown = CliRunner().invoke(
        cli, ["worker", "--topology", "trust", "--describe", "--markdown"])
    assert markdown.exit_code == 0, markdown.output
    assert markdown.output == trust(Settings()).markdown() + "\n"


def test_describe_refuses_an_unknown_topology() -> None:
    result = CliRunner().invoke(cli, ["worker", "--topology", "all", "--describe"])
    assert result.exit_code == 2
    assert "unknown topology 'all'" in result.output


def test_the_architecture_doc_shows_each_topology_as_its_value_describes_it() -> None:
    text = ARCHITECTURE.read_text()
    sections = dict(re.findall(r"<!-- topology:(\w+) -->\n(.*?)\n<!-- /topology -->", text,
                               re.DOTALL))
    assert sections.keys() == TOPOLOGIES.keys()
    for name, factory in TOPOLOGIES.items():
        assert sections[name] == factory(Settings()).markdown(), (
            f"docs/architecture.md is stale for {name}: paste the output of "
            f"`dharma worker --topology {name} --describe --markdown`")


def test_up_refuses_an_unknown_topology_before_starting_anything() -> None:
    result = CliRunner().invoke(cli, ["up", "--topology", "ingest", "--topology", "injest"])
    assert result.exit_code == 2
    assert "unknown topology 'injest'" in result.output
