"""Faust's aiokafka transport with a configurable fetch wait and a short prefetch backoff.

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
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver

DEFAULT_FETCH_MAX_WAIT_MS = 10
#: aiokafka sends no fetch to a broker while records it fetched from any of its
#: partitions wait to be consumed, for up to this long (its default: 0.1 s).
PREFETCH_BACKOFF_S = 0.01
_ATTR = "dharma_fetch_max_wait_ms"


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
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    """``dharma://host:port``: Kafka through aiokafka, with our fetch wait."""

    Consumer = Consumer
