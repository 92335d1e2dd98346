"""Production deployment files, checked statically (no Docker engine needed).

Covers ``docker-compose.yml``, ``Dockerfile``, ``.env.example``,
``infra/docker/prometheus.yml`` and the Grafana provisioning and dashboard.
The endpoint variables the workers must set are derived from the settings
classes (every field whose default points at the loopback embedded stack), so
a new backing service in :mod:`dharma.streams.settings` is checked here
without editing this file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from promql import dashboard_queries, metric_names
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from dharma.streams.settings import Settings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER_DIR = ROOT / "infra" / "docker"
PROMETHEUS = DOCKER_DIR / "prometheus.yml"
GRAFANA = DOCKER_DIR / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "dharma-streams.json"

#: Services the settings and the design expect in production.
REQUIRED_SERVICES = {
    "kafka", "schema-registry", "timescaledb", "neo4j", "redis", "prometheus", "grafana",
}
#: Services whose data must outlive their container (the registry keeps its in Kafka).
DATA_SERVICES = {"kafka", "timescaledb", "neo4j", "redis", "prometheus", "grafana"}
#: The probe each stateful service's healthcheck must run.
HEALTH_PROBES = {
    "kafka": "kafka-broker-api-versions",
    "schema-registry": "/subjects",
    "timescaledb": "pg_isready",
    "neo4j": "7474",
    "redis": "redis-cli ping",
}
#: The metrics contract of the workers' Prometheus sensor.
CONTRACT_METRICS = {
    "dharma_events_in_total",
    "dharma_events_out_total",
    "dharma_dead_lettered_total",
    "dharma_sink_rows_total",
    "dharma_processing_latency_seconds",
}
CONTRACT_HISTOGRAMS = {"dharma_processing_latency_seconds"}
#: Settings groups that configure the process itself, not a backing service.
NOT_BACKING_SERVICES = {"worker", "stack", "trust", "healing", "executor", "cost"}
#: Settings of an address a process listens on, not of a service it connects to.
LISTENERS = {"api"}
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_AUTH$|USER_INFO|API_KEY", re.IGNORECASE)
REF = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


# --- helpers ------------------------------------------------------------------


def _settings_groups() -> dict[str, type[BaseSettings]]:
    groups = {}
    for name, field in Settings.model_fields.items():
        cls = field.annotation
        if isinstance(cls, type) and issubclass(cls, BaseSettings):
            groups[name] = cls
    return groups


def _env_name(cls: type[BaseSettings], field: str) -> str:
    return f"{cls.model_config.get('env_prefix') or ''}{field}".upper()


def _default_text(cls: type[BaseSettings], field: str) -> str:
    value = cls.model_fields[field].get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return "" if value is None else str(value)


def all_setting_variables() -> dict[str, tuple[type[BaseSettings], str]]:
    """Every ``DHARMA_*`` variable any settings class reads."""
    return {
        _env_name(cls, field): (cls, field)
        for cls in _settings_groups().values()
        for field in cls.model_fields
    }


def endpoint_variables() -> dict[str, str]:
    """Variables whose default names a loopback host, keyed to their group."""
    out = {}
    for group, cls in _settings_groups().items():
        if group in LISTENERS:
            continue
        for field in cls.model_fields:
            if any(host in _default_text(cls, field) for host in LOOPBACK):
                out[_env_name(cls, field)] = group
    return out


def _resolve(value: str) -> str:
    """Interpolate ``${VAR:-default}`` to its default and other references to a stand-in."""
    return REF.sub(lambda m: m["arg"] if m["op"] in (":-", "-") else "stand-in", value)


def hosts_of(value: str) -> list[str]:
    """Host names in a URL, DSN or comma-separated ``host:port`` list."""
    hosts = []
    for part in _resolve(value).split(","):
        part = part.strip()
        hostname = urlsplit(part if "://" in part else f"//{part}").hostname
        if hostname:
            hosts.append(hostname)
    return hosts


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def is_required_ref(value: str) -> bool:
    """True for exactly one ``${VAR:?...}``/``${VAR?...}`` (or plain ``${VAR}``) reference."""
    match = REF.fullmatch(value.strip())
    return match is not None and match["op"] in (None, ":?", "?")


def contract_name(metric: str) -> str:
    """The contract name of a series: a histogram's ``_bucket``/``_sum``/``_count`` map to it."""
    base = re.sub(r"_(bucket|sum|count)$", "", metric)
    return base if base in CONTRACT_HISTOGRAMS else metric


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def workers(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {name: svc for name, svc in services.items() if name.startswith("worker-")}
    assert found, "no worker-* services in docker-compose.yml"
    return found


def compose_text() -> str:
    """The compose file without its comment lines (which may quote ``${...}``)."""
    lines = COMPOSE.read_text().splitlines()
    return "\n".join(ln for ln in lines if not ln.lstrip().startswith("#"))


def _named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for vol in service.get("volumes") or []:
        source = vol.get("source", "") if isinstance(vol, dict) else vol.split(":", 1)[0]
        if source and not source.startswith((".", "/", "~", "$")):
            names.append(source)
    return names


def _backing_hosts(workers: dict[str, dict[str, Any]]) -> set[str]:
    return {
        host
        for svc in workers.values()
        for var, value in environment(svc).items()
        if var in endpoint_variables()
        for host in hosts_of(value)
    }


# --- docker-compose.yml ---------------------------------------------------------------


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services)


def test_endpoint_variables_are_derived_for_every_backing_service() -> None:
    groups = set(endpoint_variables().values())
    expected = set(_settings_groups()) - NOT_BACKING_SERVICES - LISTENERS
    assert groups == expected, f"settings groups without a loopback endpoint: {expected - groups}"


def test_workers_set_every_endpoint_to_a_compose_service(
    services: dict[str, dict[str, Any]], workers: dict[str, dict[str, Any]]
) -> None:
    for name, svc in workers.items():
        env = environment(svc)
        for var in endpoint_variables():
            assert var in env, f"{name} does not set {var}"
            hosts = hosts_of(env[var])
            assert hosts, f"{name}: {var}={env[var]!r} names no host"
            for host in hosts:
                assert host in services, f"{name}: {var} points at {host!r}, not a service"
                assert host not in workers, f"{name}: {var} points at a worker"


def test_only_real_settings_are_set(services: dict[str, dict[str, Any]]) -> None:
    known = all_setting_variables()
    for name, svc in services.items():
        for var in environment(svc):
            if var.startswith("DHARMA_"):
                assert var in known, f"{name} sets {var}, which no settings class reads"


def test_workers_run_their_own_topology(workers: dict[str, dict[str, Any]]) -> None:
    for name, svc in workers.items():
        topology = name.removeprefix("worker-")
        assert svc.get("command") == ["worker", "--topology", topology], name
        assert "build" in svc, f"{name} is not built from the Dockerfile"
        assert "container_name" not in svc and not svc.get("ports"), f"{name} cannot scale"


def test_worker_topologies_are_registered(workers: dict[str, dict[str, Any]]) -> None:
    from dharma.topologies import TOPOLOGIES

    for name in workers:
        topology = name.removeprefix("worker-")
        assert topology in TOPOLOGIES, f"{name}: topology {topology!r} is not in TOPOLOGIES"


def test_every_topology_has_its_worker(workers: dict[str, dict[str, Any]]) -> None:
    from dharma.topologies import TOPOLOGIES

    assert {f"worker-{name}" for name in TOPOLOGIES} <= set(workers)
    env = environment(workers["worker-cmdb"])
    assert {"DHARMA_GRAPH_URI", "DHARMA_GRAPH_USER", "DHARMA_GRAPH_PASSWORD"} <= set(env)
    assert hosts_of(env["DHARMA_GRAPH_URI"]) == ["neo4j"]


def test_stateful_services_have_healthchecks_and_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]],
    workers: dict[str, dict[str, Any]],
) -> None:
    declared = set(compose.get("volumes") or {})
    stateful = _backing_hosts(workers) | set(HEALTH_PROBES) | DATA_SERVICES
    stateful |= {name for name, svc in services.items() if _named_volumes(svc)}
    for name in stateful:
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        probe = HEALTH_PROBES.get(name)
        assert probe is None or probe in json.dumps(check["test"]), f"{name}: no {probe}"
        vols = _named_volumes(services[name])
        assert set(vols) <= declared, f"{name}: undeclared volumes {set(vols) - declared}"
    for name in DATA_SERVICES:
        assert _named_volumes(services[name]), f"{name} keeps its data in no named volume"


def test_dependencies_wait_for_health(
    services: dict[str, dict[str, Any]], workers: dict[str, dict[str, Any]]
) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        for dep, spec in deps.items():
            condition = spec.get("condition")
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits on {dep}'s healthcheck"
            else:
                assert condition == "service_completed_successfully", f"{name} -> {dep}"
                assert services[dep].get("restart") == "no", f"{dep} is not a one-shot job"
    for name, svc in workers.items():
        for host in _backing_hosts({name: svc}):
            assert svc["depends_on"][host]["condition"] == "service_healthy", (name, host)
    init = {tuple(svc.get("command") or ()): name for name, svc in services.items()}
    for command in (("topics", "create"), ("schemas", "register")):
        assert command in init, f"no one-shot service runs `dharma {' '.join(command)}`"
        for name, svc in workers.items():
            assert init[command] in svc["depends_on"], f"{name} does not wait for {command}"


def test_no_secret_literal_is_committed(services: dict[str, dict[str, Any]]) -> None:
    for m in REF.finditer(compose_text()):
        if SECRET_NAME.search(m["name"]):
            assert m["op"] in (None, ":?", "?"), f"secret {m['name']} has a default"
    secret_vars = {
        var for var, (cls, field) in all_setting_variables().items()
        if "SecretStr" in str(cls.model_fields[field].annotation)
    }
    for name, svc in services.items():
        for var, value in environment(svc).items():
            url = urlsplit(value) if "://" in value else None
            if url and url.password is not None:
                password = value.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
                assert is_required_ref(password), f"{name}: {var} embeds a literal password"
            elif SECRET_NAME.search(var) or (var in secret_vars and not url):
                assert REF.search(value), f"{name}: {var} is a literal, not ${{...}}"
                refs = REF.findall(value)
                assert all(op in ("", ":?", "?") for _, op, _ in refs), f"{name}: {var}"


def test_env_example_documents_every_variable() -> None:
    documented = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            documented[key.strip()] = value.strip()
    for m in REF.finditer(compose_text()):
        assert m["name"] in documented, f".env.example does not document {m['name']}"
    for key, value in documented.items():
        if SECRET_NAME.search(key):
            assert value == "", f".env.example carries a value for the secret {key}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".git" in ignored and ".venv" in ignored


def test_compose_config_parses_with_docker_client() -> None:
    """``docker compose config -q`` when the client has compose; otherwise nothing.

    Parsing needs no engine.  Without a compose-capable client this check
    passes silently, so the static checks above still carry the file.
    """
    docker = shutil.which("docker")
    if docker is None:
        return
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        return
    required = {m["name"] for m in REF.finditer(compose_text()) if m["op"] in (":?", "?")}
    env = {**os.environ, **{name: "placeholder-value" for name in required}}
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile -------------------------------------------------------------------------


def _final_stage() -> list[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    last_from = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return lines[last_from:]


def _instruction(lines: list[str], name: str) -> list[str]:
    return [ln.split(None, 1)[1] for ln in lines if ln.upper().startswith(f"{name} ")]


def test_dockerfile() -> None:
    stage = _final_stage()
    assert stage[0].split()[1].startswith("python:3.11-slim")
    assert "pip install -c constraints.txt ." in DOCKERFILE.read_text()  # pinned, no extras
    users = _instruction(stage, "USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as root"
    (entrypoint,) = _instruction(stage, "ENTRYPOINT")
    assert Path(json.loads(entrypoint)[0]).name == "dharma"
    from dharma.topologies import TOPOLOGIES

    command, option, topology = json.loads(_instruction(stage, "CMD")[-1])
    assert (command, option) == ("worker", "--topology")
    assert topology in TOPOLOGIES, f"the image's default topology {topology!r} does not exist"
    (health,) = _instruction(stage, "HEALTHCHECK")
    assert "/metrics" in health
    assert str(WorkerSettings.model_fields["metrics_port"].default) in health


# --- Prometheus and Grafana ---------------------------------------------------------------


def test_prometheus_scrapes_every_worker(
    services: dict[str, dict[str, Any]], workers: dict[str, dict[str, Any]]
) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    scraped: dict[str, set[str]] = {}
    for job in config["scrape_configs"]:
        targets = [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
        for sd in job.get("dns_sd_configs", []):
            targets += [f"{n}:{sd.get('port')}" for n in sd["names"]]
        for target in targets:
            host, _, port = target.rpartition(":")
            assert host in services or host in LOOPBACK, f"{job['job_name']}: {host}?"
            if host in workers:
                assert job.get("metrics_path", "/metrics") == "/metrics"
                scraped.setdefault(host, set()).add(port)
    default_port = str(WorkerSettings.model_fields["metrics_port"].default)
    for name, svc in workers.items():
        port = environment(svc).get("DHARMA_WORKER_METRICS_PORT", default_port)
        assert port in scraped.get(name, set()), f"{name}:{port} is not scraped"
    assert "./infra/docker/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in (
        services["prometheus"]["volumes"])


def test_grafana_provisioning(services: dict[str, dict[str, Any]]) -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert hosts_of(source["url"]) == ["prometheus"] and source["uid"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./infra/docker/grafana/provisioning"
    for provider in providers["providers"]:
        assert mounts[provider["options"]["path"]] == "./infra/docker/grafana/dashboards"


def test_dashboard_uses_only_the_metrics_contract() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    uid = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"][0]["uid"]
    used = set()
    for panel in dashboard["panels"]:
        for ds in [panel.get("datasource")] + [t.get("datasource") for t in panel["targets"]]:
            assert ds is None or ds.get("uid") == uid, panel["title"]
    for expr in dashboard_queries(dashboard):
        names = {contract_name(n) for n in metric_names(expr)}
        assert names <= CONTRACT_METRICS, f"{expr!r} uses {names - CONTRACT_METRICS}"
        used |= names
    assert used == CONTRACT_METRICS, f"no panel for {CONTRACT_METRICS - used}"
