"""Output of agents: a librdkafka producer flushed before each batch is acknowledged.

Faust's own ``topic.send`` costs tens of microseconds per message in Python;
librdkafka queues a message in about a microsecond.  Agents queue their
outputs (and table changelog records, :mod:`dharma.streams.changelog`) with
:meth:`Emitter.emit` and ``await`` :meth:`Emitter.flush` at the end of a
batch, so every output of a batch is acknowledged by the broker before the
batch's offsets can be committed (at-least-once).

Outputs linger up to :data:`LINGER_MS` to leave together, and each flush
sends what lingers at once: at most one record batch per partition per 10 ms
while an agent works through a batch, and one per flush at low rates, instead
of one per millisecond.  The embedded broker's cost per fetch and per
``ListOffsets`` grows with the record batches a partition holds
(``docs/broker.md``).  The flush then polls the producer from the event loop,
so failed deliveries are reported there.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from dharma.streams.errors import DharmaError
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import Settings

logger = logging.getLogger(__name__)


class EmitError(DharmaError):
    """Outputs of a batch were not acknowledged by the broker."""


#: How long an output waits to share its record batch (a flush sends it sooner).  Up
#: to here, longer lingers only cost throughput: sending no longer overlaps the work.
LINGER_MS = 10
#: How long the flush's kick blocks: librdkafka sends what lingers at once only while
#: a flush call lasts, and its broker threads must wake within it.
KICK_S = 0.001


class SupportsEmit(Protocol):
    """Queues messages: an :class:`Emitter`, or a recorder in a test harness."""

    def emit(self, topic: str, key: bytes | None, value: bytes | None,
             partition: int | None = None) -> None: ...


class BatchEmitter(SupportsEmit, Protocol):
    """Queues a batch's messages and flushes them before the batch is acknowledged: an
    :class:`Emitter`, or a recorder in a test harness."""

    async def flush(self) -> None: ...


class Emitter:
    """Queue outputs, then flush them all before the batch is acknowledged."""

    def __init__(self, settings: Settings, metrics: PipelineMetrics,
                 flush_timeout_s: float = 30.0) -> None:
        self._producer = Producer({
            **settings.kafka.confluent_config(),
            "linger.ms": LINGER_MS,
            "enable.idempotence": False,
            "acks": "all",
            "queue.buffering.max.messages": 1_000_000,
            # Report failures only: a Python callback per delivered message fought the
            # event loop for the GIL and stalled flushes.
            "delivery.report.only.error": True,
        })
        self.metrics = metrics
        self.flush_timeout_s = flush_timeout_s
        self._failed: list[tuple[KafkaError, Message]] = []
        self._queued: Counter[str] = Counter()

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed.append((err, msg))

    def emit(self, topic: str, key: bytes | None, value: bytes | None,
             partition: int | None = None) -> None:
        """Queue one message (never blocks the event loop for long); ``partition``
        None lets the partitioner choose from the key; a None ``value`` is a tombstone."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered,
                                       partition=-1 if partition is None else partition)
                self._queued[topic] += 1
                return
            except BufferError:
                self._producer.poll(0.05)

    async def flush(self, attempts: int = 3) -> None:
        """Wait until every queued message is acknowledged.

        While the broker is slow this waits (backpressure: the batch is not
        acknowledged meanwhile); messages whose delivery failed are sent again,
        up to ``attempts`` times, then :class:`EmitError` is raised.
        """
        loop = asyncio.get_running_loop()
        for attempt in range(1, attempts + 1):
            await self._drain(loop)
            failed, self._failed = self._failed, []
            for _, msg in failed:
                self._queued[msg.topic() or ""] -= 1
            for topic, count in self._queued.items():
                self.metrics.events_out.labels(topic).inc(count)
            self._queued.clear()
            if not failed:
                return
            logger.warning("attempt=%d: %d outputs failed (%r); sending again", attempt,
                           len(failed), failed[0][0])
            for _, msg in failed:
                partition = msg.partition()
                self.emit(msg.topic() or "", msg.key(), msg.value(),
                          None if partition is None or partition < 0 else partition)
        raise EmitError(f"outputs failed after {attempts} attempts")

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        producer, warn_at = self._producer, loop.time() + self.flush_timeout_s
        producer.flush(KICK_S)  # what lingers leaves now, not at the end of its linger
        while len(producer):
            await asyncio.sleep(0.001)
            producer.poll(0)
            if loop.time() > warn_at:
                logger.warning("outputs still unacknowledged after %.0fs; waiting",
                               self.flush_timeout_s)
                warn_at = loop.time() + self.flush_timeout_s

    def close(self) -> None:
        try:
            self._producer.flush(self.flush_timeout_s)
        except KafkaException:
            logger.exception("flushing outputs at shutdown")
