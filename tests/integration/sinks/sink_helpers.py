"""Helpers of the sink outage tests: a steady metrics feed, readers of what was stored."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

from dharma.cli.dlq import read_letters
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.topics import METRICS_RAW

METRIC = "cpu_utilization"


def sample(source: str, i: int, start_ms: int) -> dict[str, Any]:
    """The ``i``-th sample of ``source`` (one a second from ``start_ms``)."""
    return {"source": source, "metric": METRIC, "value": 40.0 + i % 7, "ts": start_ms + i * 1000,
            "labels": {"env": "outage-test"}, "unit": "percent"}


class Feed:
    """A steady stream of samples, round-robin over ``sources``, from a thread."""

    def __init__(self, settings: Any, sources: list[str], per_second: float) -> None:
        self.sources, self.period = sources, 1.0 / per_second
        self.producer = AvroProducer(Producer(settings.kafka.confluent_config()),
                                     registry_client(settings))
        self.start_ms = int(time.time() * 1000) - 3_600_000
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.send_one()

    def send_one(self) -> None:
        n = len(self.sources)
        source = self.sources[self.sent % n]
        self.producer.produce(METRICS_RAW.name, source,
                              sample(source, self.sent // n, self.start_ms))
        self.producer.flush()
        self.sent += 1

    def __enter__(self) -> Feed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stored_rows(dsn: str, sources: list[str]) -> tuple[int, int]:
    """(rows, distinct (source, metric, ts)) of ``sources`` in ``metrics_raw``."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT (source, metric, ts)) "
                           "FROM metrics_raw WHERE source = ANY(%s)", (sources,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def letters_of(settings: Any, topic: str, tag: str) -> list[dict[str, Any]]:
    """Every dead letter of ``topic`` so far whose original value holds ``tag``."""
    return [letter for _, letter in read_letters(settings, topic)
            if tag.encode() in (letter["original_value"] or b"")]


def lag(settings: Any, group: str, topic: str) -> int:
    """Messages of ``topic`` past the offsets the consumer group ``group`` committed
    (read, since an embedded broker lists a partition's end short of its last batch)."""
    probe = Consumer({**settings.kafka.confluent_config(), "group.id": group,
                      "enable.auto.commit": False})
    try:
        parts = probe.list_topics(topic, timeout=5).topics[topic].partitions
        committed = probe.committed([TopicPartition(topic, p) for p in parts], timeout=10)
    finally:
        probe.close()
    reader = Consumer({**settings.kafka.confluent_config(), "group.id": f"{group}-lag",
                       "enable.auto.commit": False})
    try:
        reader.assign([TopicPartition(topic, tp.partition, max(tp.offset, 0))
                       for tp in committed])
        behind, idle = 0, 0
        while idle < 2:  # the end: two empty polls in a row
            batch = [m for m in reader.consume(500, 1.0) if not m.error()]
            behind, idle = behind + len(batch), 0 if batch else idle + 1
        return behind
    finally:
        reader.close()
