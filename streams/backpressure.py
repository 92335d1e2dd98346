"""Backpressure: an agent holds its batch while a store is away, instead of dropping it.

A sink's own retries ride out a blink of a second or two.  Beyond that,
:meth:`Backpressure.hold` holds the batch: the partitions the agent consumes are
paused (Faust's ``Consumer.pause_partitions``: nothing more is fetched), the
write is tried again with bounded exponential backoff, and the partitions
resume once it succeeded.  The agent has not acknowledged the batch meanwhile,
so no offset is committed past unwritten data; a restart during the hold
replays the batch, and idempotent writes store it once.  Only after
``limit_s`` does the last error go on, for the agent to dead-letter the batch.

The limit is per outage, not per batch: once a store has been away for
``limit_s``, later batches are not held again (each is dead-lettered after the
sink's own short retries, and the stream goes on) until a write succeeds.

Delivery: at-least-once; the batches held right now are the gauge
``dharma_sink_holding``, the time held is counted in
``dharma_sink_held_seconds_total`` (when a hold ends) and each hold's end in
``dharma_sink_outages_total{outcome=written|given_up}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from faust.types import TP
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_before_delay
from tenacity.wait import wait_exponential

from dharma.streams.errors import DharmaError
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import WorkerSettings

__all__ = ["Backpressure", "PartitionControl"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: First wait between two writes of a held batch (doubling up to the maximum).
MIN_BACKOFF_S = 0.5


class PartitionControl(Protocol):
    """What holding needs of a consumer (Faust's ``Consumer`` has it)."""

    def assignment(self) -> set[TP]: ...

    def pause_partitions(self, tps: Iterable[TP]) -> None: ...

    def resume_partitions(self, tps: Iterable[TP]) -> None: ...

    def on_buffer_full(self, tp: TP) -> None: ...

    def on_buffer_drop(self, tp: TP) -> None: ...


class Backpressure:
    """Holds an agent's batch while a store is away (see the module docstring).

    Parameters
    ----------
    consumer:
        Returns the consumer whose partitions are paused (``lambda: app.consumer``:
        it exists only once the worker runs).
    topics:
        The topics the agent consumes: their assigned partitions are paused.
    metrics:
        Where the time held and the outcome of each hold are counted.
    limit_s:
        Longest hold; then the last error is raised (0: no hold at all).
    max_backoff_s:
        Longest wait between two writes.
    min_backoff_s:
        First wait between two writes (doubling up to ``max_backoff_s``).
    retry_on:
        The errors that mean "the store is away" (others are raised at once).
    """

    def __init__(self, consumer: Callable[[], PartitionControl], topics: Iterable[str],
                 metrics: PipelineMetrics, *, limit_s: float, max_backoff_s: float,
                 min_backoff_s: float = MIN_BACKOFF_S,
                 retry_on: type[BaseException] | tuple[type[BaseException], ...] = DharmaError
                 ) -> None:
        self._consumer, self.topics = consumer, frozenset(topics)
        self.metrics, self.limit_s = metrics, limit_s
        self.min_backoff_s, self.max_backoff_s = min(min_backoff_s, max_backoff_s), max_backoff_s
        self.retry_on = retry_on
        self._outage_since: float | None = None  # loop time of the first failed write
        self._spent = False  # a hold of this outage gave up: no more holds until a write works

    @classmethod
    def for_worker(cls, consumer: Callable[[], PartitionControl], topics: Iterable[str],
                   metrics: PipelineMetrics, worker: WorkerSettings,
                   retry_on: type[BaseException] | tuple[type[BaseException], ...] = DharmaError
                   ) -> Backpressure:
        """Limits from ``DHARMA_WORKER_SINK_OUTAGE_LIMIT_S`` and ``_SINK_MAX_BACKOFF_S``."""
        return cls(consumer, topics, metrics, limit_s=worker.sink_outage_limit_s,
                   max_backoff_s=worker.sink_max_backoff_s, retry_on=retry_on)

    async def hold(self, sink: str, write: Callable[[], Awaitable[T]]) -> T:
        """``write()``'s result; while it raises ``retry_on``, the batch is held (partitions
        paused, bounded exponential backoff) for up to ``limit_s``, then the error goes on."""
        paused: set[TP] = set()
        loop = asyncio.get_running_loop()
        started = loop.time()
        since = self._outage_since if self._outage_since is not None else started
        budget = 0.0 if self._spent else max(0.0, self.limit_s - (started - since))

        holding = False  # counted in dharma_sink_holding while true

        def pause(state: RetryCallState) -> None:
            nonlocal holding
            if self._outage_since is None:
                self._outage_since = started
            if not paused:
                logger.warning("sink=%s away, holding the batch (up to %.0fs): %r", sink,
                               budget, state.outcome.exception() if state.outcome else None)
            if not holding:
                holding = True
                self.metrics.sink_holding.labels(sink).inc()
            self._pause(paused)  # again at every try: a rebalance may have assigned more

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(self.retry_on), reraise=True, before_sleep=pause,
            stop=stop_before_delay(budget),
            wait=wait_exponential(multiplier=self.min_backoff_s, min=self.min_backoff_s,
                                  max=self.max_backoff_s))
        outcome = "given_up"
        try:
            async for attempt in retrying:
                with attempt:
                    result = await write()
                    outcome, self._outage_since, self._spent = "written", None, False
                    return result
            raise AssertionError("unreachable")  # pragma: no cover
        except self.retry_on:
            self._spent = True
            if self._outage_since is None:
                self._outage_since = since
            raise
        finally:
            if holding:
                self.metrics.sink_holding.labels(sink).dec()
            if paused:
                self._resume(paused)
                self.metrics.sink_held.labels(sink).inc(loop.time() - started)
                self.metrics.sink_outages.labels(sink, outcome).inc()
                logger.warning("sink=%s hold ended outcome=%s after %.1fs", sink, outcome,
                               loop.time() - started)

    def _pause(self, paused: set[TP]) -> None:
        """Pause ``paused`` and the agent's partitions not paused yet.

        Faust's ``Consumer.getmany`` drops the records of a partition paused while they
        are being delivered (fetched, not yet handed to the stream), and later counts
        their offsets as consumed (a gap): lost input.  A partition whose stream buffer
        filled up is spared that (``on_buffer_full``: deliver what was fetched, fetch no
        more), so a held partition is marked so too; ``pause_partitions`` keeps it out
        of the fetch set across rebalances and recoveries.
        """
        consumer = self._consumer()
        mine = {tp for tp in consumer.assignment() if tp.topic in self.topics} - paused
        for tp in mine:
            consumer.on_buffer_full(tp)
        if mine:
            consumer.pause_partitions(mine)
            paused.update(mine)

    def _resume(self, paused: set[TP]) -> None:
        consumer = self._consumer()
        # a partition revoked during the hold is not ours to resume any more
        mine = paused & consumer.assignment()
        consumer.resume_partitions(mine)
        for tp in mine:
            consumer.on_buffer_drop(tp)
