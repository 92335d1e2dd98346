"""The shape of the Grafana dashboards and the Prometheus rules, and how compose loads them
(their metric names are checked against real workers in
``tests/integration/test_grafana_metrics.py``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from promql import RULES, dashboard_queries, load_dashboards, load_rules, metric_names

from dharma.topologies import TOPOLOGIES

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "infra" / "docker"
#: Dashboard schema versions Grafana 11 writes (11.0-11.2: 39, from 11.3: 40).
GRAFANA_11_SCHEMAS = {39, 40}
#: What an operator needs on every topology's dashboard, by the metric that shows it.
EVERY_TOPOLOGY_SHOWS = {
    "throughput": "dharma_events_in_total",
    "processing latency": "dharma_processing_latency_seconds_bucket",
    "consumer lag": "dharma_consumer_lag",
    "dead letters by reason": "dharma_dead_lettered_total",
    "sink backpressure": "dharma_sink_holding",
    "sink outages": "dharma_sink_outages_total",
}
#: The capability-specific metrics each topology's dashboard charts.
CAPABILITY_METRICS = {
    "ingest": {"dharma_sink_rows_total", "dharma_checkpoints_rejected_total"},
    "anomaly": {"dharma_events_out_total", "dharma_table_keys_evicted_total"},
    "trust": {"dharma_events_out_total", "dharma_sink_rows_total"},
    "cmdb": {"dharma_cmdb_changes_applied_total", "dharma_cmdb_stale_assets",
             "dharma_sink_write_seconds_bucket"},
    "executor": {"dharma_executor_requests_total"},
    "healing": {"dharma_healing_incidents_open", "dharma_healing_remediations_total",
                "dharma_healing_skips_total", "dharma_healing_mttr_seconds_bucket"},
    "cost": {"dharma_cost_rows_written_total", "dharma_cost_corrections_total"},
}
#: Each alert the rules must carry, by the metric it watches.
ALERTED = {
    "worker down": "up",
    "consumer lag": "dharma_consumer_lag",
    "dead-letter rate": "dharma_dead_lettered_total",
    "sink backpressure": "dharma_sink_holding",
}
DURATION = re.compile(r"\d+[smhdwy]")


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return load_dashboards()


@pytest.fixture(scope="module")
def datasource_uid() -> str:
    sources = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    return str(source["uid"])


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]


def _names(dashboard: dict[str, Any]) -> set[str]:
    return {name for expr in dashboard_queries(dashboard) for name in metric_names(expr)}


def test_every_topology_has_its_dashboard(dashboards: dict[str, dict[str, Any]]) -> None:
    assert {f"dharma-{name}" for name in TOPOLOGIES} <= set(dashboards)
    uids = [d["uid"] for d in dashboards.values()]
    assert len(uids) == len(set(uids)), f"a dashboard uid is used twice: {uids}"


def test_dashboards_are_grafana_11_json_on_the_provisioned_datasource(
        dashboards: dict[str, dict[str, Any]], datasource_uid: str) -> None:
    for stem, dashboard in dashboards.items():
        assert dashboard["schemaVersion"] in GRAFANA_11_SCHEMAS, stem
        assert dashboard["title"] and dashboard["uid"] == stem, stem
        panels = _panels(dashboard)
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{stem}: a panel id is used twice"
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (stem, panel["title"])
            if panel["type"] == "row":
                continue
            assert panel["targets"], (stem, panel["title"])
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), (stem, panel["title"])
            for source in [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]:
                assert source == {"type": "prometheus", "uid": datasource_uid}, (stem, panel)
        for var in dashboard["templating"]["list"]:
            assert var["datasource"]["uid"] == datasource_uid, (stem, var["name"])


@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_a_topology_dashboard_shows_what_an_operator_needs_of_its_workers_only(
        dashboards: dict[str, dict[str, Any]], topology: str) -> None:
    dashboard = dashboards[f"dharma-{topology}"]
    names = _names(dashboard)
    missing = {need for need, metric in EVERY_TOPOLOGY_SHOWS.items() if metric not in names}
    assert not missing, f"{topology}: no panel for {missing}"
    assert CAPABILITY_METRICS[topology] <= names, CAPABILITY_METRICS[topology] - names
    for expr in dashboard_queries(dashboard):
        assert f'service="worker-{topology}"' in expr, f"{topology}: {expr!r} is not its own"


def test_one_provider_puts_every_dashboard_in_one_folder() -> None:
    providers = yaml.safe_load(
        (DOCKER / "grafana/provisioning/dashboards/dashboards.yml").read_text())["providers"]
    (provider,) = providers
    assert provider["folder"] and provider["type"] == "file"
    assert not provider["options"].get("foldersFromFilesStructure")


def test_every_rule_is_an_alert_with_a_delay_a_severity_and_its_text() -> None:
    rules = [rule for group in load_rules()["groups"] for rule in group["rules"]]
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    for rule in rules:
        assert DURATION.fullmatch(str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip()
        assert metric_names(rule["expr"]), rule["alert"]
    watched = {name for rule in rules for name in metric_names(rule["expr"])}
    missing = {what for what, metric in ALERTED.items() if metric not in watched}
    assert not missing, f"no alert on {missing}"


def test_prometheus_loads_the_rules_compose_mounts() -> None:
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    (path,) = config["rule_files"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["prometheus"]["volumes"]
    source = f"./{RULES.relative_to(ROOT)}"
    assert f"{source}:{path}:ro" in volumes
