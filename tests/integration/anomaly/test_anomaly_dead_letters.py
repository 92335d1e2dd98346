"""The anomaly topology alone answers for its bad input: nothing it rejects vanishes.

Its topology value names the anomaly capability as the one that dead-letters
``metrics.raw``, so a worker of that topology, with no ingest worker running,
sends a non-finite sample and undecodable bytes to ``metrics.raw.dlq`` and goes
on scoring the good samples around them.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer

from dharma.topologies import anomaly

pytestmark = pytest.mark.integration


def test_the_anomaly_topology_alone_dead_letters_what_it_rejects(
        settings: Any, producer: Any, workers: Any, reader: Any, poll: Any) -> None:
    assert anomaly(settings).dead_letter_owners() == {"metrics.raw": ["anomaly"]}
    source = f"dl-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    sample = {"source": source, "metric": "cpu_utilization", "unit": "percent",
              "labels": {}, "value": 12.0}
    predictions = reader("ml.predictions", lambda v: v["source"] == source)
    dlq = reader("metrics.raw.dlq", lambda v: source.encode() in (v["original_key"] or b""))
    worker = workers("anomaly")

    producer.produce("metrics.raw", source, {**sample, "ts": now - 2000})
    producer.produce("metrics.raw", source, {**sample, "ts": now - 1000, "value": math.nan})
    producer.produce("metrics.raw", source, {**sample, "ts": now})
    producer.flush()
    raw = Producer(settings.kafka.confluent_config())
    raw.produce("metrics.raw", key=source.encode(), value=b"not an avro message")
    raw.flush(10)

    poll(lambda: len(dlq.poll()) >= 2, "the NaN sample and the undecodable bytes dead-lettered")
    poll(lambda: len(predictions.poll()) >= 2, "the good samples scored")
    assert worker.proc.poll() is None, "the worker died"
    assert sorted(d["error_kind"] for d in dlq.values) == ["contract_violation", "undecodable"]
    series = f"{source}|cpu_utilization"
    assert {p["prediction_id"] for p in predictions.values} == {f"{series}@{now - 2000}",
                                                                f"{series}@{now}"}
