"""The ``dharma://`` transport: Faust's aiokafka driver with the overrides below.

Registered for the ``dharma://`` broker scheme (entry point
``faust.transports`` in ``pyproject.toml``;
:meth:`~dharma.streams.settings.KafkaSettings.faust_broker_url` builds such URLs).
Each overriding method's docstring names what it overrides, the upstream bug
or limitation, and the test that covers it; ``tests/unit/test_faust_contract.py``
pins every private attribute used here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver

from dharma.streams.faust_fork.offsets import exact_end_offsets

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
    """Faust's aiokafka consumer thread, one override per method."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        """Fetch wait and prefetch backoff of the aiokafka consumer.

        Overrides ``AIOKafkaConsumerThread._create_worker_consumer``, which passes
        aiokafka a hard-coded ``fetch_max_wait_ms=1500`` (no Faust setting; no
        upstream issue found).  A broker may hold a fetch for the whole wait when
        data arrives during it (Tansu does): a second between a produce and its
        prediction.  We use ``DHARMA_WORKER_FETCH_MAX_WAIT_MS`` (:func:`set_fetch_wait`).

        aiokafka also sends no fetch to a broker while records fetched from any of
        its partitions wait to be consumed, for up to its fetcher's
        ``prefetch_backoff`` (0.1 s, added by aio-libs/aiokafka#534; not a consumer
        setting).  With every partition on one broker that stalled the whole
        stream a few times a minute; here it is :data:`PREFETCH_BACKOFF_S`.
        """
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when it starts its fetcher
        consumer._fetch_max_wait_ms = fetch_waits(self.app)[0]
        start = consumer.start

        async def start_with_short_backoff() -> None:
            await start()
            consumer._fetcher._prefetch_backoff = PREFETCH_BACKOFF_S

        consumer.start = start_with_short_backoff
        return consumer

    async def on_thread_stop(self) -> None:
        """A worker whose broker has gone away still stops on SIGTERM.

        Overrides ``AIOKafkaConsumerThread.on_thread_stop``: with the broker gone,
        aiokafka's ``consumer.stop()`` awaits fetch tasks it has just cancelled and
        raises ``CancelledError`` (aio-libs/aiokafka#647); mode then never signals
        the thread's shutdown and the worker hangs.  That error is no cancellation
        of this task (nothing asked for one): the consumer is closed.  Covered by
        ``tests/integration/test_worker_shutdown.py``.
        """
        try:
            await super().on_thread_stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            logger.warning("consumer closed with its fetches cancelled (broker unreachable?)")

    async def _highwaters(self, partitions: Any) -> Any:
        """Changelog ends that Faust's table recovery reads up to, exact on Tansu.

        Overrides ``AIOKafkaConsumerThread._highwaters`` (``ListOffsets``): the
        embedded broker answers short of the last record batch, which lost the
        rest of that batch's changelog records on every restart (broker side; no
        upstream issue found).  See :mod:`dharma.streams.faust_fork.offsets`;
        covered by ``tests/integration/streams/test_changelog_recovery.py``.
        """
        listed = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return listed
        return await exact_end_offsets(self._ensure_consumer()._client, listed)

    async def getmany(self, active_partitions: Any, timeout: float) -> Any:
        """Fetch exactly the partitions active when the fetch is asked for.

        Overrides ``AIOKafkaConsumerThread.getmany``: Faust passes its live set of
        active partitions, which recovery empties in place while aiokafka waits
        for records; aiokafka reads an empty set as "every partition" and returns
        records Faust then drops as inactive, after their offsets count as
        consumed: input lost on a worker's start or restart (the race
        robinhood/faust#69 fixed, present again in faust-streaming 0.15).  Covered
        by ``tests/integration/anomaly/test_anomaly_recovery.py``.
        """
        requested = set(active_partitions) if active_partitions is not None else None
        if requested is not None and not requested:
            return {}
        return await super().getmany(requested, timeout)


class Consumer(driver.Consumer):
    """Faust's aiokafka consumer with :class:`ConsumerThread` and the overrides below."""

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def use_fetch_wait(self, recovering: bool) -> None:
        """Fetch with the recovery wait (``recovering``) or the streams' wait from now on.

        Sets the private ``Fetcher._fetch_max_wait_ms`` of aiokafka, read for each
        fetch request it builds: Tansu stops looking partitions up when a fetch's
        wait runs out and then answers with nothing, so a changelog whose lookup
        takes longer than the stream wait would never be read.  Covered by
        ``tests/integration/streams/test_recovery_fetch_wait.py``.
        """
        aiokafka_consumer = getattr(self._thread, "_consumer", None)
        fetcher = getattr(aiokafka_consumer, "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = fetch_waits(self.app)[1 if recovering else 0]

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """Say so when offsets never arrive.

        Overrides ``faust.transport.consumer.Consumer._add_gap``: Faust counts
        offsets that never arrived as consumed, right for compacted topics and
        transactions (faust-streaming#282, #606).  Ours are neither, so a gap is
        lost input: logged as a warning, then recorded as Faust does.
        """
        logger.warning("offsets %d-%d of %s[%d] never arrived: Faust counts them as consumed",
                       offset_from, offset_to, tp.topic, tp.partition)
        await super()._add_gap(tp, offset_from, offset_to)


class Transport(driver.Transport):
    """``dharma://host:port``: Kafka through aiokafka, with :class:`Consumer`."""

    Consumer = Consumer
