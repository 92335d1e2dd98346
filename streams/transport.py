"""Faust's aiokafka transport: a configurable fetch wait, a short prefetch backoff,
and a warning when input offsets never arrive.

Faust hard-codes ``fetch_max_wait_ms=1500`` for its consumer.  A broker may
hold a fetch for the whole wait when data arrives during it (the embedded
Tansu broker does), which put about a second between a produce and its
prediction.  This transport, registered for the ``dharma://`` broker scheme
(entry point ``faust.transports``), uses the app's
``DHARMA_WORKER_FETCH_MAX_WAIT_MS`` setting instead (see :func:`set_fetch_wait`).

aiokafka also sends no fetch to a broker while records fetched from any of its
partitions wait to be consumed, for up to 100 ms (its fetcher's
``prefetch_backoff``, not a consumer setting); with every partition on one
broker that stalled the whole stream a few times a minute.  Here it is 10 ms.

Faust counts offsets that never arrive as consumed (a "gap": compaction or
transactions on other topics).  Ours are neither, so a gap is lost input; it
is logged as a warning.  After a restart, Faust's recovery resumes the stream
partitions before it seeks them to their committed offsets, and records
fetched in between can make the lower ones look "already read" (seen in the
SIGKILL recovery test, about 1 run in 4).  Two fixes were tried and dropped:
holding the stream partitions until the seek, and a ``Recovery`` that seeks
before it resumes (as faust-streaming#217 did for another path).  Both ended
the gaps, but left some restarted partitions, or whole workers, fetching
nothing, about as often; the cause of that stall is not known yet.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver

DEFAULT_FETCH_MAX_WAIT_MS = 10
#: aiokafka sends no fetch to a broker while records it fetched from any of its
#: partitions wait to be consumed, for up to this long (its default: 0.1 s).
PREFETCH_BACKOFF_S = 0.01
_ATTR = "dharma_fetch_max_wait_ms"

logger = logging.getLogger(__name__)


def set_fetch_wait(app: faust.App, ms: int) -> None:
    """Give ``app``'s consumer a fetch wait of ``ms`` milliseconds."""
    setattr(app, _ATTR, ms)


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """Creates the aiokafka consumer with our fetch wait instead of Faust's 1500 ms."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when it starts its fetcher; Faust offers no setting for it.
        consumer._fetch_max_wait_ms = getattr(self.app, _ATTR, DEFAULT_FETCH_MAX_WAIT_MS)
        start = consumer.start

        async def start_with_short_backoff() -> None:
            await start()
            consumer._fetcher._prefetch_backoff = PREFETCH_BACKOFF_S

        consumer.start = start_with_short_backoff
        return consumer


class Consumer(driver.Consumer):
    """Faust's aiokafka consumer with the changes above."""

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # Faust counts offsets that never arrived as consumed; on our topics (not
        # compacted, no transactions) that is lost input: say so.
        logger.warning("offsets %d-%d of %s[%d] never arrived: Faust counts them as consumed",
                       offset_from, offset_to, tp.topic, tp.partition)
        await super()._add_gap(tp, offset_from, offset_to)


class Transport(driver.Transport):
    """``dharma://host:port``: Kafka through aiokafka, with our fetch wait."""

    Consumer = Consumer
