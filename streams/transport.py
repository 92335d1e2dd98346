"""Faust's aiokafka transport: a configurable fetch wait, a short prefetch backoff,
fetches of exactly the active partitions, and a warning when input offsets never arrive.

Faust hard-codes ``fetch_max_wait_ms=1500`` for its consumer.  A broker may
hold a fetch for the whole wait when data arrives during it (the embedded
Tansu broker does), which put about a second between a produce and its
prediction.  This transport, registered for the ``dharma://`` broker scheme
(entry point ``faust.transports``), uses the app's
``DHARMA_WORKER_FETCH_MAX_WAIT_MS`` setting instead (see :func:`set_fetch_wait`),
and ``DHARMA_WORKER_RECOVERY_FETCH_MAX_WAIT_MS`` while tables recover
(:meth:`Consumer.use_fetch_wait`): Tansu stops looking partitions up when a
fetch's wait runs out and then answers with nothing, so a changelog whose
lookup takes longer than the stream wait would never be read.

aiokafka also sends no fetch to a broker while records fetched from any of its
partitions wait to be consumed, for up to 100 ms (its fetcher's
``prefetch_backoff``, not a consumer setting); with every partition on one
broker that stalled the whole stream a few times a minute.  Here it is 10 ms.

Faust counts offsets that never arrive as consumed (a "gap": compaction or
transactions on other topics).  Ours are neither, so a gap is lost input; it
is logged as a warning.

Faust passes aiokafka its live set of active partitions, which recovery
empties in place while aiokafka waits for records; aiokafka reads an empty set
as "every partition", so it returned stream records Faust then dropped as
inactive, after their offsets counted as consumed: input lost on a worker's
start or restart.  Each fetch here asks for a snapshot of the set (and for
nothing when it is empty).  The other half of that loss, Faust resuming
stream partitions before seeking them, is fixed in :mod:`dharma.streams.recovery`.

A worker whose broker has gone away still stops on SIGTERM: aiokafka's
consumer, closing with its fetches cancelled, raised ``CancelledError`` out
of the consumer thread's shutdown, which then never completed.

High watermarks (what Faust's table recovery reads up to) are the partitions'
true ends: the embedded broker answers ``ListOffsets`` with the base offset of
the last record batch, which lost the rest of that batch's changelog records
on every restart (:mod:`dharma.streams.offsets`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver

from dharma.streams.offsets import exact_end_offsets

DEFAULT_FETCH_MAX_WAIT_MS = 100
#: aiokafka sends no fetch to a broker while records it fetched from any of its
#: partitions wait to be consumed, for up to this long (its default: 0.1 s).
PREFETCH_BACKOFF_S = 0.01
_ATTR, _RECOVERY_ATTR = "dharma_fetch_max_wait_ms", "dharma_recovery_fetch_max_wait_ms"

logger = logging.getLogger(__name__)


def set_fetch_wait(app: faust.App, ms: int, recovery_ms: int | None = None) -> None:
    """Give ``app``'s consumer a fetch wait of ``ms`` milliseconds (``recovery_ms`` while
    its tables recover; ``ms`` when None)."""
    setattr(app, _ATTR, ms)
    setattr(app, _RECOVERY_ATTR, ms if recovery_ms is None else recovery_ms)


def fetch_waits(app: Any) -> tuple[int, int]:
    """``app``'s fetch waits in ms: for its streams, and while its tables recover."""
    ms = getattr(app, _ATTR, DEFAULT_FETCH_MAX_WAIT_MS)
    return ms, getattr(app, _RECOVERY_ATTR, ms)


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """Creates the aiokafka consumer with our fetch wait instead of Faust's 1500 ms."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when it starts its fetcher; Faust offers no setting for it.
        consumer._fetch_max_wait_ms = fetch_waits(self.app)[0]
        start = consumer.start

        async def start_with_short_backoff() -> None:
            await start()
            consumer._fetcher._prefetch_backoff = PREFETCH_BACKOFF_S

        consumer.start = start_with_short_backoff
        return consumer

    async def on_thread_stop(self) -> None:
        # With the broker gone, aiokafka's consumer.stop() awaits fetch tasks it has
        # just cancelled and so raises CancelledError; mode then never signals the
        # thread's shutdown and the worker hangs on SIGTERM.  That error is not a
        # cancellation of this task (nothing asked for one): the consumer is closed.
        try:
            await super().on_thread_stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            logger.warning("consumer closed with its fetches cancelled (broker unreachable?)")

    async def _highwaters(self, partitions: Any) -> Any:
        # Faust's recovery reads a changelog up to this; ListOffsets on the embedded
        # broker answers short of the last record batch.
        listed = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return listed
        return await exact_end_offsets(self._ensure_consumer()._client, listed)

    async def getmany(self, active_partitions: Any, timeout: float) -> Any:
        # Faust passes its live set of active partitions, which recovery empties
        # in place while aiokafka waits for records; aiokafka reads an empty set
        # as "every partition" and returns records Faust then drops as inactive,
        # after their offsets count as consumed.  Ask for a snapshot instead.
        requested = set(active_partitions) if active_partitions is not None else None
        if requested is not None and not requested:
            return {}
        return await super().getmany(requested, timeout)


class Consumer(driver.Consumer):
    """Faust's aiokafka consumer with the changes above."""

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def use_fetch_wait(self, recovering: bool) -> None:
        """Fetch with the recovery wait (``recovering``) or the streams' wait from now on."""
        aiokafka_consumer = getattr(self._thread, "_consumer", None)
        fetcher = getattr(aiokafka_consumer, "_fetcher", None)
        if fetcher is not None:  # read by aiokafka for each fetch request it builds
            fetcher._fetch_max_wait_ms = fetch_waits(self.app)[1 if recovering else 0]

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # Faust counts offsets that never arrived as consumed; on our topics (not
        # compacted, no transactions) that is lost input: say so.
        logger.warning("offsets %d-%d of %s[%d] never arrived: Faust counts them as consumed",
                       offset_from, offset_to, tp.topic, tp.partition)
        await super()._add_gap(tp, offset_from, offset_to)


class Transport(driver.Transport):
    """``dharma://host:port``: Kafka through aiokafka, with our fetch wait."""

    Consumer = Consumer
