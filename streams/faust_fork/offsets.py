"""Exact end offsets, read from Fetch responses instead of ``ListOffsets``.

The embedded broker (Tansu 0.6, memory storage) answers ``ListOffsets``
(latest) with the base offset of a partition's last record batch plus one: a
batch of 20 records at offsets 80-99 makes it answer 81, not 100.  A reader
that stops at that "end" misses the rest of the last batch; Faust's table
recovery is such a reader.  Every Fetch response carries the partition's true
high watermark, on Tansu as on Kafka, so a Fetch at the listed end (empty on
Kafka, where that is the end) gives the exact end offset (broker side; no
upstream issue found).

:func:`high_watermarks` sends those fetches through an aiokafka client, built
with aiokafka's protocol classes (``FetchRequest``, the ``FetchResponse``
partition layout: pinned by ``tests/unit/test_faust_contract.py``); it is used
by the worker transport (:mod:`dharma.streams.faust_fork.transport`) and by
``dharma stack status``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition

logger = logging.getLogger(__name__)

#: How long the broker may hold one of these fetches (it returns at once on
#: Kafka; Tansu looks the partition up once either way).
FETCH_WAIT_MS = 1
READ_UNCOMMITTED = 0


def _fetch_request(offsets: Mapping[TopicPartition, int]) -> FetchRequest:
    by_topic: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for tp, offset in offsets.items():
        by_topic[tp.topic].append((tp.partition, max(offset, 0), 1))
    return FetchRequest(FETCH_WAIT_MS, 1, 1, READ_UNCOMMITTED, sorted(by_topic.items()))


async def high_watermarks(client: Any, offsets: Mapping[TopicPartition, int]
                          ) -> dict[TopicPartition, int | None]:
    """The high watermark of each partition, from a Fetch at ``offsets[tp]``.

    ``client`` is a bootstrapped ``aiokafka.AIOKafkaClient`` (a consumer's
    ``_client``).  A partition whose leader is unknown or whose fetch answered
    with an error maps to None.
    """
    by_node: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
    found: dict[TopicPartition, int | None] = dict.fromkeys(offsets)
    for tp, offset in offsets.items():
        leader = client.cluster.leader_for_partition(tp)
        if leader is not None and leader >= 0:
            by_node[leader][tp] = offset
    for node, wanted in by_node.items():
        response = await client.send(node, _fetch_request(wanted))
        for topic, partitions in response.topics:
            for partition in partitions:
                # every FetchResponse version: (partition, error_code, high_watermark, ...)
                index, error, high = partition[0], partition[1], partition[2]
                tp = TopicPartition(topic, index)
                if tp in found and not error and high >= 0:
                    found[tp] = high
                elif tp in found:
                    logger.warning("no high watermark for %s[%d]: error %d", topic, index, error)
    return found


async def exact_end_offsets(client: Any, listed: Mapping[TopicPartition, int]
                            ) -> dict[TopicPartition, int]:
    """``listed`` end offsets (a ``ListOffsets`` answer), raised to the partitions'
    true ends where the broker answered short; unchanged where it could not be told."""
    highs = await high_watermarks(client, listed)
    return {tp: max(end, highs.get(tp) or end) for tp, end in listed.items()}
