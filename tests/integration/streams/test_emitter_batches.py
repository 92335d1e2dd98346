"""The emitter sends what a batch queued as one record batch per partition at its flush.

The embedded broker's cost per fetch grows with the record batches a partition
holds (docs/broker.md), so outputs queued while an agent works must not leave in
millisecond-sized batches.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from dharma.streams.emitter import Emitter
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


async def _emit_while_working(emitter: Emitter, topic: str) -> None:
    """What an agent does: queue outputs while it works through a batch, then flush."""
    for i in range(MESSAGES):
        emitter.emit(topic, b"k%d" % i, b"v%d" % i, partition=0)
        await asyncio.sleep(0.002)  # the agent's work between two outputs (40 ms in all)
    await emitter.flush()


def test_a_flush_sends_one_record_batch_per_partition(settings: Any) -> None:
    topic = f"emit-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka.confluent_config())
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    emitter = Emitter(settings, PipelineMetrics())
    try:
        asyncio.run(_emit_while_working(emitter, topic))
    finally:
        emitter.close()
    counts = asyncio.run(_batches(settings.kafka.bootstrap_servers, TopicPartition(topic, 0)))
    assert sum(counts) == MESSAGES
    assert counts == [MESSAGES], f"{len(counts)} record batches for one flush: {counts}"
