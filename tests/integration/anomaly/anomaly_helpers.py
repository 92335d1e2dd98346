"""Helpers of the anomaly flow tests: readers of the outputs and of the detector changelog."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dharma.agents.anomaly.codec import CheckpointCodec, SeriesState
from dharma.agents.anomaly.logic import make_detector
from dharma.streams.admin import registry_client

MINUTE_MS = 60_000


def to_ms(ts: Any) -> int:
    """Epoch ms of a decoded ``timestamp-millis`` field (fastavro gives a datetime)."""
    return int(ts.timestamp() * 1000) if isinstance(ts, datetime) else int(ts)


def series_samples(source: str, n: int, start_ms: int, step_ms: int = MINUTE_MS,
                   metric: str = "cpu_utilization", level: float = 40.0, seed: int = 0,
                   shift: tuple[int, float] | None = None) -> list[dict[str, Any]]:
    """``n`` noisy samples of one series; ``shift=(i, d)`` adds ``d`` from sample ``i`` on.

    The values depend on ``seed`` only (not on the source), so a test can pick a seed."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        value = level + rng.gauss(0.0, 1.0)
        if shift is not None and i >= shift[0]:
            value += shift[1]
        out.append({"source": source, "metric": metric, "value": value,
                    "ts": start_ms + i * step_ms, "labels": {"env": "test"}, "unit": "percent"})
    return out


def _assigned(settings: Any, topic: str) -> Consumer:
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False, "log_level": 3})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    return consumer


class TopicReader:
    """Decoded values of one Avro topic, read with ``assign`` from the beginning
    (no group join), kept when ``keep(value)`` holds; with ``key_has``, only messages
    whose key holds those bytes are decoded (a topic a whole suite wrote to is long)."""

    def __init__(self, settings: Any, topic: str, keep: Callable[[dict[str, Any]], bool],
                 key_has: bytes | None = None) -> None:
        self.topic, self.keep, self.key_has = topic, keep, key_has
        self._decode = AvroDeserializer(registry_client(settings))
        self._ctx = SerializationContext(topic, MessageField.VALUE)
        self._consumer = _assigned(settings, topic)
        self.values: list[dict[str, Any]] = []

    def poll(self, timeout: float = 0.3) -> list[dict[str, Any]]:
        """Read what arrived; everything kept so far."""
        for msg in self._consumer.consume(2000, timeout):
            if msg.error() or (self.key_has is not None
                               and self.key_has not in (msg.key() or b"")):
                continue
            value = self._decode(msg.value(), self._ctx)
            if self.keep(value):
                self.values.append(value)
        return self.values

    def close(self) -> None:
        self._consumer.close()


def checkpoints(settings: Any, app_id: str,
                timeout: float = 10.0) -> dict[str, list[SeriesState]]:
    """Every checkpoint of every series in the worker's detector changelog, oldest
    first, read up to the high watermarks of the moment (which the embedded broker
    reports short of the last record batch: its tail is read only if it arrives)."""
    topic = f"{app_id}-anomaly-detectors-changelog"
    consumer = _assigned(settings, topic)
    found: dict[str, list[SeriesState]] = {}
    codec = CheckpointCodec(make_detector)
    try:
        parts = consumer.assignment()
        high = {tp.partition: consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in parts}
        pending = {p for p, h in high.items() if h > 0}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.3):
                if msg.error():
                    continue
                # a consumed message has an offset, a partition and (a checkpoint) a key
                if msg.offset() + 1 >= high[msg.partition()]:  # type: ignore[operator,index]
                    pending.discard(msg.partition())
                if msg.value() is not None:
                    key = msg.key().decode().strip('"')  # type: ignore[union-attr]
                    found.setdefault(key, []).append(codec.decode(msg.value()))
    finally:
        consumer.close()
    return found


def firing_per_episode(alerts: Iterable[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """Distinct firing alert ids per ``(fingerprint, episode_start)``."""
    out: dict[tuple[str, str], set[str]] = {}
    for alert in alerts:
        if alert["status"] == "firing":
            key = (alert["fingerprint"], alert["labels"]["episode_start"])
            out.setdefault(key, set()).add(alert["alert_id"])
    return out


def offline_alerts(samples: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    """The alerts the anomaly batch step (what the agent runs) sends on ``samples``, fed
    in order to a fresh in-memory state, and the last series' final alert episode."""
    from dharma.agents.anomaly.logic import BatchStep, MemoryStates, Observation, make_detector
    from dharma.streams.records import MetricSample

    states = MemoryStates(make_detector)
    sent, series = [], ""
    score = BatchStep(states, make_detector)
    for s in samples:
        sample = MetricSample.model_validate(s)
        sent += score([(None, Observation.of(sample))]).alerts
        series = sample.series
    return sent, states.get(series).alert if series else None


def offline_firings(samples: Iterable[dict[str, Any]]) -> list[int]:
    """Timestamps at which :func:`offline_alerts` fires."""
    return [a["ts"] for a in offline_alerts(samples)[0] if a["status"] == "firing"]
