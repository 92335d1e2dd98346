"""Consumer lag of the workers' groups, per topic and partition, for pipeline health.

Groups and their committed offsets come from the broker's admin API (ListGroups,
OffsetFetch); end offsets from ``ListOffsets``, raised to the partitions' true
ends from Fetch responses (the embedded broker lists an end short of its last record
batch: :mod:`dharma.streams.faust_fork.offsets`).  What the broker cannot answer
becomes ``lag_error`` with the reason, never a failed request.  Answers are cached for
``max_age_s`` so that a page polling health costs the broker little.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.structs import TopicPartition as AioPartition
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from dharma.streams.faust_fork.offsets import exact_end_offsets
from dharma.streams.settings import Settings
from dharma.streams.topics import all_topics

__all__ = ["LagMonitor"]

logger = logging.getLogger(__name__)

TIMEOUT_S = 10.0
#: Groups looked at (one OffsetFetch each); more are left out and said so.
MAX_GROUPS = 500
#: Groups of our readers, which assign partitions and never commit: not looked at.
READER_GROUPS = ("dharma-tail-", "dharma-api-feed-")

Ends = dict[tuple[str, int], int]
Committed = dict[str, dict[tuple[str, int], int]]


def _listed_ends(admin: AdminClient) -> Ends:
    """``ListOffsets`` (latest) of every partition of the design's topics."""
    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    wanted = {TopicPartition(spec.name, p): OffsetSpec.latest() for spec in all_topics()
              if spec.name in topics for p in topics[spec.name].partitions}
    if not wanted:
        return {}
    ends = {}
    for tp, future in admin.list_offsets(wanted, request_timeout=TIMEOUT_S).items():
        ends[(tp.topic, tp.partition)] = future.result().offset
    return ends


def _committed(admin: AdminClient, topics: set[str]) -> tuple[Committed, list[str]]:
    """Committed offsets of every group on ``topics``; notes on what was left out."""
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result()
    groups = sorted(g.group_id for g in listed.valid if not g.group_id.startswith(READER_GROUPS))
    notes = [f"{len(groups) - MAX_GROUPS} consumer groups left out"] if len(groups) > MAX_GROUPS \
        else []
    committed: Committed = {}
    for group in groups[:MAX_GROUPS]:
        request = [ConsumerGroupTopicPartitions(group)]
        answer = admin.list_consumer_group_offsets(request, request_timeout=TIMEOUT_S)[group]
        offsets = {(tp.topic, tp.partition): tp.offset for tp in answer.result().topic_partitions
                   if tp.topic in topics and tp.offset >= 0}
        if offsets:
            committed[group] = offsets
    return committed, notes


async def _exact(settings: Settings, listed: Ends) -> Ends:
    client = AIOKafkaClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    try:
        await client.bootstrap()
        await client.set_topics(sorted({t for t, _ in listed}))
        exact = await exact_end_offsets(client, {AioPartition(t, p): e
                                                 for (t, p), e in listed.items()})
        return {(tp.topic, tp.partition): end for tp, end in exact.items()}
    finally:
        await client.close()


def shape(ends: Ends, committed: Committed) -> list[dict[str, Any]]:
    """``[{topic, partitions: [{partition, end_offset, lag: {group: lag}}]}]``.

    >>> shape({("t", 0): 10, ("t", 1): 5}, {"g": {("t", 0): 4}})
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'topic': 't', 'partitions': [{'partition': 0, 'end_offset': 10, 'lag': {'g': 6}},
                                   {'partition': 1, 'end_offset': 5, 'lag': {}}]}]
    """
    topics: dict[str, list[dict[str, Any]]] = {}
    for (topic, partition), end in sorted(ends.items()):
        lag = {group: max(0, end - offsets[(topic, partition)])
               for group, offsets in sorted(committed.items()) if (topic, partition) in offsets}
        topics.setdefault(topic, []).append(
            {"partition": partition, "end_offset": end, "lag": lag})
    return [{"topic": t, "partitions": parts} for t, parts in topics.items()]


class LagMonitor:
    """Lag per topic, partition and group, answered from a cache of ``max_age_s``."""

    def __init__(self, settings: Settings, max_age_s: float = 2.0) -> None:
        self.settings, self.max_age_s = settings, max_age_s
        self._admin = AdminClient(settings.kafka.confluent_config())
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def snapshot(self) -> dict[str, Any]:
        """``{topics, lag_error}`` (``lag_error``: null, or why lag is missing or partial)."""
        async with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self.max_age_s:
                self._cached = (time.monotonic(), await self._measure())
            return self._cached[1]

    async def _measure(self) -> dict[str, Any]:
        try:
            listed = await asyncio.to_thread(_listed_ends, self._admin)
        except KafkaException as exc:
            return {"topics": [], "lag_error": f"the broker did not list end offsets: {exc}"}
        notes: list[str] = []
        try:
            ends = await _exact(self.settings, listed)
        except Exception as exc:  # the listed ends are still an answer, if short
            ends = listed
            notes.append(f"end offsets as listed (may be short): {type(exc).__name__}: {exc}")
        try:
            committed, left_out = await asyncio.to_thread(
                _committed, self._admin, {t for t, _ in ends})
            notes += left_out
        except KafkaException as exc:
            committed = {}
            notes.append(f"the broker did not list consumer groups or their offsets: {exc}")
        return {"topics": shape(ends, committed), "lag_error": "; ".join(notes) or None}
