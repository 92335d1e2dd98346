"""``dharma stack status`` shows the broker's CPU, memory and retained records, and warns
before what the broker holds starves the workers' fetches."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.structs import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from dharma.bench.broker_cost import fill_partition

pytestmark = pytest.mark.integration

BATCHES, PER_BATCH = 5_000, 3


async def _produce_batches(bootstrap: str, topic: str, batches: int, per_batch: int) -> None:
    """``batches`` record batches of ``per_batch`` records to partition 0 of ``topic``."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        await client.set_topics([topic])
        node = client.cluster.leader_for_partition(TopicPartition(topic, 0))
        await fill_partition(client, node, topic, 0, batches, per_batch)
    finally:
        await client.close()


def _status(stack_env: dict[str, str], **extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "dharma.cli", "stack", "status", "--json"],
        env={**os.environ, **stack_env, **extra}, capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


@pytest.fixture(scope="module")
def big_topic(settings: Any) -> str:
    """A topic holding 5,000 small record batches in one partition."""
    topic = f"load-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka.confluent_config())
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    asyncio.run(_produce_batches(settings.kafka.bootstrap_servers, topic, BATCHES, PER_BATCH))
    return topic


def test_status_shows_broker_cpu_memory_and_exact_retained_records(
        stack_env: dict[str, str], big_topic: str) -> None:
    broker = _status(stack_env)["broker"]
    assert broker["cpu_percent"] >= 0 and broker["rss_mb"] > 0
    assert broker["records"][big_topic] == BATCHES * PER_BATCH  # exact, not ListOffsets' answer
    assert broker["retained_records"] >= BATCHES * PER_BATCH
    assert broker["scan_ms"][big_topic] > 0


def test_status_warns_when_lookups_near_the_workers_fetch_wait(
        stack_env: dict[str, str], big_topic: str) -> None:
    # 5,000 batches take about 2.5 ms to look up: past half of a 2 ms wait, far from 1.5 s
    near = _status(stack_env, DHARMA_WORKER_FETCH_MAX_WAIT_MS="2")["broker"]["warnings"]
    assert any(w.startswith(f"{big_topic}:") for w in near), near
    far = _status(stack_env, DHARMA_WORKER_FETCH_MAX_WAIT_MS="1500")["broker"]["warnings"]
    assert not any(w.startswith(f"{big_topic}:") for w in far), far


def test_status_prints_the_broker_line_and_its_warnings(stack_env: dict[str, str],
                                                        big_topic: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dharma.cli", "stack", "status"],
        env={**os.environ, **stack_env, "DHARMA_WORKER_FETCH_MAX_WAIT_MS": "2",
             "COLUMNS": "200"}, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "of a core" in done.stdout and "records retained" in done.stdout
    assert f"warning: {big_topic}:" in done.stdout, done.stdout
