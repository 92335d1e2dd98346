"""Faust behaviour holding a batch relies on: fails loudly if an upgrade changes it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable

import faust
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from prometheus_client import CollectorRegistry

from dharma.streams.backpressure import Backpressure
from dharma.streams.errors import DharmaError
from dharma.streams.metrics import PipelineMetrics

HELD, OTHER = TP("metrics.raw", 0), TP("audit.logs", 0)


class Assigned:
    """Faust's own consumer, with a fixed assignment (no broker to be assigned by)."""

    def __init__(self, consumer: FaustConsumer) -> None:
        self.faust = consumer

    def assignment(self) -> set[TP]:
        return {HELD, OTHER}

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        self.faust.pause_partitions(tps)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        self.faust.resume_partitions(tps)

    def on_buffer_full(self, tp: TP) -> None:
        self.faust.on_buffer_full(tp)

    def on_buffer_drop(self, tp: TP) -> None:
        self.faust.on_buffer_drop(tp)


def test_faust_delivers_what_it_fetched_for_a_partition_marked_buffered() -> None:
    """``Consumer.getmany`` drops fetched records of partitions neither active nor buffered;
    a held partition is marked buffered so that in-flight records still reach the stream."""
    source = inspect.getsource(FaustConsumer.getmany)
    assert "tp in active_partitions" in source and "tp in self._buffered_partitions" in source


def test_a_held_partition_is_out_of_the_fetch_set_and_back_after() -> None:
    app = faust.App("t-hold", broker="kafka://127.0.0.1:1", web_enabled=False)
    consumer = app.consumer
    assert isinstance(consumer, FaustConsumer)  # its partition bookkeeping, not ConsumerT's
    consumer._set_active_tps({HELD, OTHER})
    seen: list[tuple[set[TP], set[TP], set[TP]]] = []
    calls: list[int] = []

    async def write() -> None:
        calls.append(1)
        seen.append((set(consumer._get_active_partitions()), set(consumer._paused_partitions),
                     set(consumer._buffered_partitions)))
        if len(calls) == 1:
            raise DharmaError("away")

    hold = Backpressure(lambda: Assigned(consumer), [HELD.topic],
                        PipelineMetrics(CollectorRegistry()), limit_s=5, max_backoff_s=0.01,
                        min_backoff_s=0.01)
    asyncio.run(hold.hold("pg", write))
    assert seen[1] == ({OTHER}, {HELD}, {HELD})  # held: not fetched, in-flight delivered
    assert consumer._get_active_partitions() == {HELD, OTHER}  # resumed
    assert not consumer._paused_partitions and not consumer._buffered_partitions
