"""What the embedded broker holds and what it costs: CPU, memory, retained records, scan time.

Tansu's memory storage keeps every record batch and looks a partition up by
listing all of its batches: a fetch that returns records and a ``ListOffsets``
cost about half a microsecond per batch the partition holds (``dharma bench
broker``, ``docs/broker.md``).  A fetch covers every partition a consumer
reads, and Tansu stops looking partitions up when the fetch's wait runs out and
then answers with nothing: once the scans of a consumer's partitions take longer
than its fetch wait, that consumer stops receiving records while the broker
spins.  :meth:`BrokerLoad.warnings` says so before it happens.

>>> load = BrokerLoad(cpu_percent=12.0, rss_mb=80.0, records={"a": 10},
...                   scan_ms={"a": 60.0})
>>> print(*load.warnings(fetch_wait_ms=100))
a: lookups take 60.0 ms, over half the fetch wait (100 ms): near it, consumers get nothing
>>> load.warnings(fetch_wait_ms=500)
[]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.structs import TopicPartition

from dharma.streams.faust_fork.offsets import high_watermarks

#: Warn when the broker uses this share of one core over the sample.
CPU_WARN_PERCENT = 50.0
#: Warn when a topic's scans take this share of the workers' fetch wait.
SCAN_WARN_SHARE = 0.5
#: An offset past any end: a fetch there answers the high watermark without a lookup.
PAST_THE_END = 2**62
LATEST = -1


@dataclass(frozen=True)
class BrokerLoad:
    """One sample of the broker: CPU (% of one core), resident memory, records and scan
    time (sum over a topic's partitions of a ``ListOffsets`` round trip, ms) per topic."""

    cpu_percent: float
    rss_mb: float
    records: dict[str, int]
    scan_ms: dict[str, float]

    @property
    def retained_records(self) -> int:
        return sum(self.records.values())

    def slowest(self) -> tuple[str, float]:
        """The topic whose partitions take longest to look up, and that time."""
        if not self.scan_ms:
            return "", 0.0
        topic = max(self.scan_ms, key=lambda t: self.scan_ms[t])
        return topic, self.scan_ms[topic]

    def warnings(self, fetch_wait_ms: int) -> list[str]:
        """What will degrade the pipeline, worst first (empty when nothing will soon)."""
        out = [f"{topic}: lookups take {ms:.1f} ms, over half the fetch wait ({fetch_wait_ms} "
               "ms): near it, consumers get nothing"
               for topic, ms in sorted(self.scan_ms.items(), key=lambda kv: -kv[1])
               if ms >= SCAN_WARN_SHARE * fetch_wait_ms]
        if self.cpu_percent >= CPU_WARN_PERCENT:
            out.append(f"the broker uses {self.cpu_percent:.0f}% of a core: what it holds slows "
                       "every fetch")
        return out


def process_usage(pid: int, window_s: float = 1.0) -> tuple[float, float]:
    """CPU (% of one core over ``window_s``) and resident memory (MB) of process ``pid``."""
    proc = psutil.Process(pid)
    before, started = proc.cpu_times(), time.monotonic()
    time.sleep(window_s)
    after, elapsed = proc.cpu_times(), time.monotonic() - started
    used = (after.user + after.system) - (before.user + before.system)
    return 100.0 * used / elapsed, proc.memory_info().rss / 2**20


async def _scan_ms(client: AIOKafkaClient, tps: Iterable[TopicPartition]) -> dict[str, float]:
    """Per topic, the summed round trips of ``ListOffsets`` (latest) on each partition."""
    out: dict[str, float] = {}
    for tp in tps:
        node = client.cluster.leader_for_partition(tp)
        if node is None or node < 0:
            continue
        started = time.perf_counter()
        await client.send(node, OffsetRequest(-1, 0, [(tp.topic, [(tp.partition, LATEST)])]))
        out[tp.topic] = out.get(tp.topic, 0.0) + (time.perf_counter() - started) * 1000
    return out


async def _holdings(bootstrap: str, scan: bool) -> tuple[dict[str, int], dict[str, float]]:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
        tps = [TopicPartition(t, p) for t in sorted(cluster.topics())
               for p in sorted(cluster.partitions_for_topic(t) or ())]
        await client.set_topics(list(cluster.topics()))
        highs = await high_watermarks(client, dict.fromkeys(tps, PAST_THE_END))
        records: dict[str, int] = {}
        for tp, high in highs.items():
            records[tp.topic] = records.get(tp.topic, 0) + (high or 0)
        return records, (await _scan_ms(client, tps) if scan else {})
    finally:
        await client.close()


async def _group_lags(bootstrap: str, groups: Iterable[str]) -> dict[str, int]:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
        await client.set_topics(list(cluster.topics()))
        everything = [(t, sorted(cluster.partitions_for_topic(t) or ())) for t in cluster.topics()]
        node = next(iter(client.cluster.brokers())).nodeId
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            response = await client.send(node, OffsetFetchRequest(group, everything))
            committed[group] = {TopicPartition(topic, part[0]): part[1]
                                for topic, parts in response.topics for part in parts
                                if part[1] >= 0}
        wanted = {tp for c in committed.values() for tp in c}
        highs = await high_watermarks(client, dict.fromkeys(wanted, PAST_THE_END))
        return {group: sum(max(0, (highs.get(tp) or 0) - offset) for tp, offset in c.items())
                for group, c in committed.items()}
    finally:
        await client.close()


def group_lags(bootstrap: str, groups: Iterable[str]) -> dict[str, int]:
    """Records each consumer group has yet to commit, over the partitions it committed."""
    return asyncio.run(_group_lags(bootstrap, list(groups)))


def holdings(bootstrap: str, scan: bool = True) -> tuple[dict[str, int], dict[str, float]]:
    """Retained records per topic (exact) and, with ``scan``, scan time per topic (ms)."""
    return asyncio.run(_holdings(bootstrap, scan))


def sample(pid: int, bootstrap: str, window_s: float = 1.0, scan: bool = True) -> BrokerLoad:
    """CPU and memory of broker process ``pid`` over ``window_s``, then what it holds."""
    cpu, rss = process_usage(pid, window_s)
    records, scan_ms = holdings(bootstrap, scan)
    return BrokerLoad(round(cpu, 1), round(rss, 1), records,
                      {t: round(ms, 2) for t, ms in scan_ms.items()})
