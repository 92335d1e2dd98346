"""The embedded stack: idempotent ``up``, health, endpoints that answer, port conflicts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import neo4j
import psycopg
import pytest
import redis
from confluent_kafka.admin import AdminClient

from dharma.infra.stack import EmbeddedStack, PortTakenError
from dharma.streams.admin import create_topics
from dharma.streams.settings import Settings, StackSettings
from dharma.streams.topics import all_topics

pytestmark = pytest.mark.integration

SERVICES = {"postgres", "registry", "kafka", "falkordb"}
ENDPOINTS = ("kafka_bootstrap", "registry_url", "postgres_dsn", "redis_url", "graph_uri",
             "bolt_uri")


def test_up_again_is_idempotent(settings: Settings) -> None:
    stack = EmbeddedStack(settings)
    before = {s.name: s.pid for s in stack.status()}
    assert stack.up() == []
    after = {s.name: s.pid for s in stack.status()}
    assert after == before
    assert all(pid is not None for pid in after.values())


def test_status_reports_every_service_healthy(settings: Settings) -> None:
    status = EmbeddedStack(settings).status()
    assert {s.name for s in status} == SERVICES
    for s in status:
        assert s.healthy and s.pid is not None, s
    ports = {s.name: s.port for s in status}
    assert ports["kafka"] == settings.stack.kafka_port
    assert ports["postgres"] == settings.stack.postgres_port


@pytest.fixture(scope="module")
def status_json(stack_env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "dharma.cli", "stack", "status", "--json"],
        env={**os.environ, **stack_env}, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_status_json_lists_every_endpoint_and_service(
    status_json: dict[str, Any], settings: Settings
) -> None:
    endpoints = status_json["endpoints"]
    assert set(ENDPOINTS) <= set(endpoints)
    assert endpoints["kafka_bootstrap"] == settings.kafka.bootstrap_servers
    assert endpoints["graph_uri"] == settings.graph.uri
    assert set(status_json["services"]) == SERVICES
    assert all(s["healthy"] for s in status_json["services"].values())


def test_kafka_endpoint_answers(status_json: dict[str, Any]) -> None:
    admin = AdminClient({"bootstrap.servers": status_json["endpoints"]["kafka_bootstrap"]})
    metadata = admin.list_topics(timeout=10)
    assert metadata.brokers
    assert "metrics.raw" in metadata.topics


def test_registry_endpoint_answers(status_json: dict[str, Any]) -> None:
    response = httpx.get(f"{status_json['endpoints']['registry_url']}/subjects", timeout=10)
    assert response.status_code == 200
    assert "metrics.raw-value" in response.json()


def test_postgres_endpoint_answers(status_json: dict[str, Any]) -> None:
    with psycopg.connect(status_json["endpoints"]["postgres_dsn"], connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_redis_endpoint_answers(status_json: dict[str, Any]) -> None:
    client = redis.Redis.from_url(status_json["endpoints"]["redis_url"], socket_timeout=10)
    try:
        assert client.ping()
    finally:
        client.close()


def test_bolt_endpoint_answers(status_json: dict[str, Any]) -> None:
    with neo4j.GraphDatabase.driver(status_json["endpoints"]["bolt_uri"], auth=None) as driver:
        records, _, _ = driver.execute_query("RETURN 1 AS one")
        assert records[0]["one"] == 1


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port on which something else is listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_taken_by_another_process_is_refused(
    settings: Settings, taken_port: int, tmp_path: Path
) -> None:
    other = Settings(stack=StackSettings(
        state_dir=tmp_path / "other-stack",
        postgres_port=taken_port,
        kafka_port=settings.stack.kafka_port,
        registry_port=settings.stack.registry_port,
        redis_port=settings.stack.redis_port,
        bolt_port=settings.stack.bolt_port,
    ))
    stack = EmbeddedStack(other)
    with pytest.raises(PortTakenError) as info:
        stack.up()
    message = str(info.value)
    assert str(taken_port) in message
    assert "DHARMA_STACK_POSTGRES_PORT" in message
    assert all(s.pid is None for s in stack.status())  # nothing was started


def test_create_topics_is_idempotent_and_partitions_match(settings: Settings) -> None:
    first = create_topics(settings)
    second = create_topics(settings)
    names = {t.name for t in all_topics()}
    assert set(first) == set(second) == names
    assert set(second.values()) == {"exists"}
    topics = AdminClient(settings.kafka.confluent_config()).list_topics(timeout=10).topics
    for spec in all_topics():
        assert len(topics[spec.name].partitions) == spec.partitions, spec.name
