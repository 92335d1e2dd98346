"""Holding a batch while a store is away: pause, bounded backoff, resume, a limit per outage."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from dharma.streams.backpressure import Backpressure
from dharma.streams.errors import DharmaError
from dharma.streams.metrics import PipelineMetrics

SOURCE, OTHER = "metrics.raw", "audit.logs"


class Away(DharmaError):
    """The store does not answer."""


class Consumer:
    """The partition bookkeeping of Faust's consumer that holding touches."""

    def __init__(self) -> None:
        self.assigned = {TP(SOURCE, 0), TP(SOURCE, 1), TP(OTHER, 0)}
        self.active = set(self.assigned)
        self.paused: set[TP] = set()
        self.buffered: set[TP] = set()
        self.history: list[frozenset[TP]] = []

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        self.paused |= set(tps)
        self.active -= set(tps)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        self.paused -= set(tps)
        self.active |= set(tps)

    def on_buffer_full(self, tp: TP) -> None:
        self.active.discard(tp)
        self.buffered.add(tp)

    def on_buffer_drop(self, tp: TP) -> None:
        if tp in self.buffered:
            self.buffered.discard(tp)
            self.active.add(tp)


def holder(consumer: Consumer, limit_s: float = 5.0) -> tuple[Backpressure, PipelineMetrics]:
    metrics = PipelineMetrics(CollectorRegistry())
    hold = Backpressure(lambda: consumer, [SOURCE], metrics, limit_s=limit_s,
                        max_backoff_s=0.02, min_backoff_s=0.01, retry_on=Away)
    return hold, metrics


def failing(times: int, consumer: Consumer) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    calls: list[int] = []

    async def write() -> str:
        calls.append(1)
        consumer.history.append(frozenset(consumer.paused))
        if len(calls) <= times:
            raise Away("connection refused")
        return "stored"

    return calls, write


def outcome(metrics: PipelineMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(
        "dharma_sink_outages_total", {"sink": "pg", "outcome": name})
    return value or 0.0


def test_a_store_that_comes_back_is_written_to_with_its_partitions_paused_meanwhile() -> None:
    consumer = Consumer()
    hold, metrics = holder(consumer)
    calls, write = failing(3, consumer)
    assert asyncio.run(hold.hold("pg", write)) == "stored"
    assert len(calls) == 4
    # paused from the first retry on, only the agent's own topic
    assert consumer.history[1] == {TP(SOURCE, 0), TP(SOURCE, 1)}
    assert consumer.paused == set() and consumer.active == consumer.assigned  # resumed
    assert consumer.buffered == set()
    assert outcome(metrics, "written") == 1


def test_no_pause_when_the_first_write_works() -> None:
    consumer = Consumer()
    hold, metrics = holder(consumer)
    _, write = failing(0, consumer)
    asyncio.run(hold.hold("pg", write))
    assert consumer.history == [frozenset()]
    assert outcome(metrics, "written") == 0


def test_the_limit_is_per_outage_not_per_batch() -> None:
    consumer = Consumer()
    hold, metrics = holder(consumer, limit_s=0.2)
    calls, write = failing(10_000, consumer)

    async def two_batches() -> None:
        with pytest.raises(Away):
            await hold.hold("pg", write)
        retried = len(calls)
        assert retried > 2  # retried, with backoff, until the limit
        with pytest.raises(Away):  # the outage outlasted the limit: no new hold
            await hold.hold("pg", write)
        assert len(calls) == retried + 1
        _, ok = failing(0, consumer)
        await hold.hold("pg", ok)  # the store is back
        calls.clear()
        with pytest.raises(Away):  # a new outage: held again
            await hold.hold("pg", write)
        assert len(calls) > 2

    asyncio.run(two_batches())
    assert consumer.paused == set() and consumer.active == consumer.assigned
    assert outcome(metrics, "given_up") == 2


def test_other_errors_are_not_held() -> None:
    consumer = Consumer()
    hold, _ = holder(consumer)

    async def broken() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        asyncio.run(hold.hold("pg", broken))
    assert consumer.paused == set()


def test_a_partition_revoked_during_the_hold_is_not_resumed() -> None:
    consumer = Consumer()
    hold, _ = holder(consumer)
    calls: list[int] = []

    async def write() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise Away("down")
        consumer.assigned.discard(TP(SOURCE, 1))  # a rebalance took it meanwhile
        consumer.active.discard(TP(SOURCE, 1))
        return "stored"

    asyncio.run(hold.hold("pg", write))
    assert TP(SOURCE, 1) not in consumer.active
    assert TP(SOURCE, 0) in consumer.active


def test_a_hold_in_progress_shows_in_the_holding_gauge_until_it_ends() -> None:
    consumer = Consumer()
    hold, metrics = holder(consumer, limit_s=0.2)
    seen: list[float | None] = []

    def holding() -> float | None:
        return metrics.registry.get_sample_value("dharma_sink_holding", {"sink": "pg"})

    def write_seen(fails: int) -> Callable[[], Awaitable[str]]:
        _, write = failing(fails, consumer)

        async def observed() -> str:
            seen.append(holding())
            return await write()

        return observed

    async def outages() -> None:
        await hold.hold("pg", write_seen(2))  # comes back after two failures
        with pytest.raises(Away):  # away beyond the limit: given up
            await hold.hold("pg", write_seen(10_000))

    asyncio.run(outages())
    assert seen[:3] == [None, 1.0, 1.0]  # held from the first retry on
    assert seen[3] == 0.0 and max(x or 0 for x in seen[4:]) == 1.0
    assert holding() == 0.0  # both holds ended, written or given up
