"""The emitter's outputs leave in few record batches: one per flush at low rates, at most
one per linger (10 ms) while an agent works through a long batch.

The embedded broker's cost per fetch grows with the record batches a partition
holds (docs/broker.md); the emitter used to send one per millisecond.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from dharma.streams.emitter import LINGER_MS, Emitter
from dharma.streams.metrics import PipelineMetrics

pytestmark = pytest.mark.integration

MESSAGES = 20


async def _batches(bootstrap: str, tp: TopicPartition) -> list[int]:
    """Record counts of each record batch the partition holds."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        await client.set_topics([tp.topic])
        node = client.cluster.leader_for_partition(tp)
        request = FetchRequest(100, 1, 1 << 24, 0, [(tp.topic, [(tp.partition, 0, 1 << 24)])])
        records = MemoryRecords(bytes((await client.send(node, request)).topics[0][1][0][-1]))
        counts = []
        while (batch := records.next_batch()) is not None:
            counts.append(len(list(batch)))
        return counts
    finally:
        await client.close()


async def _emit_while_working(emitter: Emitter, topic: str, pause_s: float) -> float:
    """What an agent does: queue outputs while it works through a batch, then flush;
    how long the work took (s)."""
    started = time.perf_counter()
    for i in range(MESSAGES):
        emitter.emit(topic, b"k%d" % i, b"v%d" % i, partition=0)
        time.sleep(pause_s)  # the agent's work between two outputs (CPU: the loop waits too)
    elapsed = time.perf_counter() - started
    await emitter.flush()
    return elapsed


def _emit(settings: Any, pause_s: float) -> tuple[list[int], float]:
    """Record counts of the batches one flush produced, and how long the work took."""
    topic = f"emit-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka.confluent_config())
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    emitter = Emitter(settings, PipelineMetrics(CollectorRegistry()))
    try:
        elapsed = asyncio.run(_emit_while_working(emitter, topic, pause_s))
    finally:
        emitter.close()
    counts = asyncio.run(_batches(settings.kafka.bootstrap_servers, TopicPartition(topic, 0)))
    assert sum(counts) == MESSAGES
    return counts, elapsed


def test_a_short_batch_leaves_as_one_record_batch(settings: Any) -> None:
    counts, elapsed = _emit(settings, pause_s=0.0003)  # about 6 ms of work: under the linger
    assert len(counts) <= 2, f"{len(counts)} record batches after {elapsed * 1000:.1f} ms: " \
        f"{counts}"


def test_a_long_batch_leaves_at_most_one_record_batch_per_linger(settings: Any) -> None:
    counts, elapsed = _emit(settings, pause_s=0.003)  # 60 ms of work or more
    most = elapsed * 1000 / LINGER_MS + 2
    assert len(counts) <= most, f"{len(counts)} record batches in {elapsed * 1000:.0f} ms"
