"""The API process's own reader of the pipeline's outputs: it fills the views and the hub.

One confluent-kafka consumer on a thread, a reader only: partitions are assigned (no
consumer group joins, nothing is committed).  It reads ``alerts.notifications``,
``ml.predictions``, ``infrastructure.events`` and the dead-letter topics, decoding
with the registry-aware codec (:class:`~dharma.streams.codec.AvroWire`).

On start (and on every restart after a failure) it clears the views and reads back
the last ``DHARMA_API_LOOKBACK_S`` seconds of each partition, at most
``DHARMA_API_LOOKBACK_RECORDS`` records: ``offsets_for_times`` where the broker
answers it (the embedded broker answers offset 0 whatever the time, hence the record
bound, and records older than the lookback are passed over).  Records read back fill
the views only; records past each partition's end as listed at start also go to live
subscribers (the embedded broker lists an end short of its last record batch, so a
few of the newest records read back may be sent live too).

A record that does not decode is counted and passed over (the workers dead-letter
their input; this is a reader).  A schema registry that cannot be reached is not the
record's fault: the consumer is closed and the feed reads back again later (after 2 s,
doubling up to 30 s while it fails), so nothing is lost from the views.  The thread
never waits on a subscriber (:meth:`~dharma.api.hub.Hub.publish_threadsafe`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from dharma.api.hub import Hub, LiveEvent, live_event
from dharma.api.series_view import point_of
from dharma.api.views import LiveViews
from dharma.schemas import DLQ_SUFFIX
from dharma.streams.admin import registry_client
from dharma.streams.codec import AvroWire
from dharma.streams.errors import DecodeError
from dharma.streams.settings import Settings
from dharma.streams.topics import (
    ALERTS,
    DEAD_LETTER_TOPICS,
    INFRASTRUCTURE_EVENTS,
    PREDICTIONS,
    TopicSpec,
)

__all__ = ["FEED_TOPICS", "Feed"]

logger = logging.getLogger(__name__)

FEED_TOPICS: tuple[TopicSpec, ...] = (ALERTS, PREDICTIONS, INFRASTRUCTURE_EVENTS,
                                      *DEAD_LETTER_TOPICS)
#: Records taken per poll, and how long a poll waits for the first.
BATCH = 500
POLL_S = 0.2
#: Wait before reading back again after the consumer failed; topics looked for again.
RETRY_S = 2.0
MAX_RETRY_S = 30.0
METADATA_EVERY_S = 30.0
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class _Start:
    """Where a partition is read from, and from which offset its records are live."""

    offset: int
    live_from: int


class Feed:
    """Reads the pipeline's outputs into ``views`` and live events into ``hub``."""

    def __init__(self, settings: Settings, views: LiveViews, hub: Hub,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.views, self.hub = settings, views, hub
        self.metrics = hub.metrics
        self._wire = AvroWire(registry_client(settings))
        self._specs = {spec.name: spec for spec in FEED_TOPICS}
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set once the records read back on (re)start are in the views.
        self.caught_up = threading.Event()
        #: Records passed over because they did not decode, or did not fit their view.
        self.undecodable = 0
        #: Times the consumer failed (broker or registry away) and the feed read back again.
        self.restarts = 0

    def start(self) -> Feed:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dharma-api-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = TIMEOUT_S) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    close = stop

    def _run(self) -> None:
        wait = RETRY_S
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:  # broker or registry away: read back again, losing nothing
                self.restarts += 1
                wait = RETRY_S if self.caught_up.is_set() else min(2 * wait, MAX_RETRY_S)
                logger.exception("api feed failed; reading back again in %.0f s", wait)
                self._stop.wait(wait)

    def _consumer(self) -> Consumer:
        return Consumer({
            **self.settings.kafka.confluent_config(),
            "group.id": f"dharma-api-feed-{uuid.uuid4().hex[:8]}",  # never joined: assign
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": self.settings.worker.fetch_max_wait_ms,
            "log_level": 3,
        })

    def _follow(self) -> None:
        consumer = self._consumer()
        try:
            self.caught_up.clear()
            self.views.clear()
            starts = self._starts(consumer, set())
            consumer.assign([TopicPartition(t, p, s.offset) for (t, p), s in starts.items()])
            pending = {tp for tp, s in starts.items() if s.offset < s.live_from}
            looked = time.monotonic()
            while not self._stop.is_set():
                messages = consumer.consume(BATCH, POLL_S)
                self._take(messages, starts, pending)
                if not self.caught_up.is_set() and (not pending or not messages):
                    self.views.rates.start()
                    self.caught_up.set()
                if time.monotonic() - looked > METADATA_EVERY_S:
                    looked = time.monotonic()
                    self._assign_new(consumer, starts)
        finally:
            consumer.close()

    def _starts(self, consumer: Consumer, known: set[tuple[str, int]]
                ) -> dict[tuple[str, int], _Start]:
        """Where to read each partition of the feed's topics not in ``known``."""
        topics = consumer.list_topics(timeout=TIMEOUT_S).topics
        since_ms = int(self._clock() * 1000) - self.settings.api.lookback_s * 1000
        wanted = [TopicPartition(name, p, since_ms) for name in self._specs if name in topics
                  for p in sorted(topics[name].partitions) if (name, p) not in known]
        if not wanted:
            return {}
        starts = {}
        for timed in consumer.offsets_for_times(wanted, timeout=TIMEOUT_S):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(timed.topic, timed.partition), timeout=TIMEOUT_S)
            at = timed.offset if timed.offset >= 0 else high  # -1: nothing that recent
            offset = max(low, at, high - self.settings.api.lookback_records)
            starts[(timed.topic, timed.partition)] = _Start(offset, high)
        return starts

    def _assign_new(self, consumer: Consumer, starts: dict[tuple[str, int], _Start]) -> None:
        """Partitions that appeared since (a topic created later) are read from their start."""
        new = self._starts(consumer, set(starts))
        if new:
            starts.update(new)
            consumer.incremental_assign([TopicPartition(t, p, s.offset)
                                         for (t, p), s in new.items()])

    def _take(self, messages: list[Message], starts: dict[tuple[str, int], _Start],
              pending: set[tuple[str, int]]) -> None:
        since_ms = int(self._clock() * 1000) - self.settings.api.lookback_s * 1000
        events: list[LiveEvent] = []
        for msg in messages:
            if msg.error():
                continue
            tp = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset() or 0
            start = starts.get(tp)
            live = start is None or offset >= start.live_from
            if not live and offset + 1 >= start.live_from:  # type: ignore[union-attr]
                pending.discard(tp)
            kind, stamp = msg.timestamp()
            if not live and kind and stamp < since_ms:
                continue  # older than the lookback (a broker that ignored the time)
            event = self._apply(msg, live)
            if event is not None:
                events.append(event)
        if events:
            self.hub.publish_threadsafe(events)

    def _apply(self, msg: Message, live: bool) -> LiveEvent | None:
        """Put one record in its view; its live event when ``live`` and anyone listens."""
        topic = msg.topic() or ""
        self.metrics.records.labels(topic).inc()
        try:  # a registry that is away raises past this: the feed reads back again later
            record = self._wire.decode(self._specs[topic].value_subject, msg.value())
        except DecodeError:
            self._passed_over(topic)
            return None
        if live:
            self.views.rates.count(topic)
        try:
            return self._route(msg, record, live and self.hub.subscribers > 0)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            logger.warning("api feed passed over %s[%s]@%s: %s", topic, msg.partition(),
                           msg.offset(), exc)
            self._passed_over(topic)
            return None

    def _passed_over(self, topic: str) -> None:
        self.undecodable += 1
        self.metrics.undecodable.labels(topic).inc()

    def _route(self, msg: Message, record: dict[str, Any], publish: bool) -> LiveEvent | None:
        """Fill the view of ``record``'s topic; its live event when ``publish``."""
        topic = msg.topic() or ""
        where = (topic, msg.partition() or 0, msg.offset() or 0)
        if topic == ALERTS.name:
            self.views.alerts.add(record)
            return live_event("alert", *where, record, severity=record["severity"],
                              resource=record["source"]) if publish else None
        if topic == PREDICTIONS.name:
            return self._prediction(where, record, publish)
        if topic == INFRASTRUCTURE_EVENTS.name:
            kind = record["type"]
            if not publish or kind not in ("incident", "remediation"):
                return None
            severity = record["attributes"].get("severity") if kind == "incident" else None
            return live_event(kind, *where, record, severity=severity,
                              resource=record["resource_id"])
        self.views.dead_letters.add(topic.removesuffix(DLQ_SUFFIX), record)
        return None

    def _prediction(self, where: tuple[str, int, int], record: dict[str, Any],
                    publish: bool) -> LiveEvent | None:
        # The branch is told by its fields, not by the ``kind`` its producer wrote: a
        # record with a decision's fields is a decision whatever it claims (its readers
        # need the decisions permission).
        if "decision_id" in record:
            return live_event("decision", *where, record, resource=record["resource"],
                              user=record["user_id"]) if publish else None
        if "anomaly_score" in record:
            self.views.series.add_point(point_of(record))
            resource = record["source"]
        else:
            resource = record.get("subject") or record.get("scope_value")
        return live_event("prediction", *where, record, resource=resource) if publish else None
