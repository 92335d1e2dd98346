"""Hostile records on the detector changelog: refused as broken checkpoints, never run.

Before a worker of a fresh consumer group starts, its detector changelog topic
is written with one record per hostile kind, each under the key of a series
that is then fed: a pickle whose ``__reduce__`` calls ``os.system`` to create a
marker file (plain, and compressed behind a ``pickle.loads`` fetched through
``dharma.agents.anomaly.state``, the way the restricted unpickler of pickled
checkpoints could be walked around), random bytes, a truncated checkpoint, a
valid envelope holding a NaN, and one of another layout version. Two records
under keys Faust's own JSON key decoding could not read (invalid UTF-8, a JSON
object) test that recovery is not stalled before our decoder sees anything.
A control series gets a valid checkpoint past warm-up: it must be restored,
which shows the worker really read the records written.

The worker must score every sample, every hostile series must start afresh
(warming up, confidence 0 at first), no marker may appear, and
``dharma_checkpoints_rejected_total`` counts each refusal by reason.
"""

from __future__ import annotations

import math
import random
import re
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from anomaly_helpers import MINUTE_MS, series_samples
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from hostile import exec_pickle, via_state_module
from prometheus_client.parser import text_string_to_metric_families

from dharma.agents.anomaly.codec import CheckpointCodec, SeriesState
from dharma.agents.anomaly.logic import make_detector
from dharma.streams.checkpoint import table_key
from dharma.streams.topics import METRICS_RAW

pytestmark = pytest.mark.integration

METRIC = "cpu_utilization"
WARM, FED = 200, 40  # control: samples learned offline, then fed to the worker
REASONS = {"pickle": "format", "pickle_via_state": "format", "random": "format",
           "truncated": "format", "nan": "invalid", "version": "version"}
#: Keys of no series, which a str-keyed table could not decode (KeyDecodeError, unhashable).
UNDECODABLE_KEYS = (b"\xff\xfe", b'{"a": 1}')


def warmed(samples: list[dict[str, Any]]) -> SeriesState:
    det = make_detector()
    for s in samples:
        x = {"value": s["value"], "timestamp": s["ts"]}
        det.score_one(x)
        det.learn_one(x)
    return SeriesState(det)


def hostile_values(marker: Path, valid: bytes) -> dict[str, bytes]:
    env = msgpack.unpackb(zlib.decompress(valid))
    nan = {**env, "detector": {**env["detector"], "lo": math.nan}}
    inner = exec_pickle(marker)
    return {"pickle": inner, "pickle_via_state": zlib.compress(via_state_module(inner)),
            "random": random.Random(7).randbytes(3000), "truncated": valid[: len(valid) // 2],
            "nan": zlib.compress(msgpack.packb(nan)),
            "version": zlib.compress(msgpack.packb({**env, "v": 99}))}


def write_changelog(settings: Any, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Each record to every partition, one produce request each, then a last filler
    record per partition: the embedded broker reports a partition's end short of its
    last record batch, so what matters must not be in it (see test_anomaly_recovery)."""
    conf = settings.kafka.confluent_config()
    new = NewTopic(topic, METRICS_RAW.partitions, 1, config={"cleanup.policy": "compact"})
    admin = AdminClient(conf)  # kept alive until the topic is created
    for future in admin.create_topics([new], request_timeout=10).values():
        future.result()
    producer = Producer(conf)
    for partition in range(METRICS_RAW.partitions):
        for key, value in [*records, (table_key("filler"), b"filler")]:
            producer.produce(topic, key=key, value=value, partition=partition)
            producer.flush(10)


def rejected(metrics_text: str, reason: str) -> float:
    """``dharma_checkpoints_rejected_total`` of the detector table for ``reason``."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "dharma_checkpoints_rejected_total" and \
                    sample.labels == {"table": "detectors", "reason": reason}:
                return sample.value
    return 0.0


def test_hostile_checkpoints_are_refused_never_executed_and_the_series_start_afresh(
        settings: Any, producer: Any, workers: Any, reader: Any, app_id: str, poll: Any,
        tmp_path: Path) -> None:
    prefix = f"hostile-{uuid.uuid4().hex[:6]}"
    start = int(time.time() * 1000) - (WARM + FED) * MINUTE_MS
    control = series_samples(f"{prefix}-control", WARM + FED, start, seed=3)
    valid = CheckpointCodec(make_detector).encode(warmed(control[:WARM]))
    marker = tmp_path / "executed"
    values = hostile_values(marker, valid)
    source = {kind: f"{prefix}-{kind}" for kind in values}
    records = [(table_key(f"{source[k]}|{METRIC}"), v) for k, v in values.items()]
    records += [(key, b"\x00junk") for key in UNDECODABLE_KEYS]
    records.append((table_key(f"{prefix}-control|{METRIC}"), valid))
    write_changelog(settings, f"{app_id}-anomaly-detectors-changelog", records)

    worker = workers("anomaly")
    mine = lambda v: str(v.get("source", "")).startswith(prefix)  # noqa: E731
    predictions = reader("ml.predictions", mine)
    feeds = {s: series_samples(s, FED, start + WARM * MINUTE_MS, seed=4) for s in source.values()}
    feeds[f"{prefix}-control"] = control[WARM:]
    for i in range(FED):
        for samples in feeds.values():
            producer.produce("metrics.raw", samples[i]["source"], samples[i])
    producer.flush()
    poll(lambda: len({p["prediction_id"] for p in predictions.poll()}) >= FED * len(feeds),
         "every sample scored", timeout=90)

    by_source: dict[str, list[dict[str, Any]]] = {}
    for p in sorted(predictions.values, key=lambda p: p["ts"]):
        by_source.setdefault(p["source"], []).append(p)
    assert not marker.exists(), "a checkpoint ran code in the worker"
    for kind, src in source.items():
        first, *_ = by_source[src]
        assert first["confidence"] == 0.0, f"{kind}: not started afresh"
        assert all(p["warming_up"] for p in by_source[src]), f"{kind}: not warming up"
    restored = by_source[f"{prefix}-control"]
    assert not any(p["warming_up"] for p in restored), "the valid checkpoint was not restored"

    port = int(poll(lambda: re.search(r"127\.0\.0\.1:(\d+)/metrics", worker.output()),
                    "metrics URL printed").group(1))
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for reason in set(REASONS.values()):
        want = sum(r == reason for r in REASONS.values())
        assert rejected(text, reason) >= want, f"{reason}: {rejected(text, reason)} < {want}"
    assert "checkpoint refused table=detectors" in worker.output()
    assert worker.proc.poll() is None, "the worker stopped"
