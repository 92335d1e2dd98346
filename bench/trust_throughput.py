"""End-to-end throughput of the ``trust`` topology through Kafka, against a bare Faust baseline.

:func:`measure_trust_throughput` runs against a running stack (the embedded
one of ``dharma stack up`` or the tests'):

1. commits the current end of ``audit.logs`` as the offsets of two fresh
   consumer groups, so both workers read exactly this run's events;
2. produces ``n_events`` seeded access requests (Avro, wire format; a mix of
   ALLOW, DENY, CHALLENGE and forbidden requests over 500 users), dated just
   before they are produced (fresh, so their sessions open) and decided in
   business hours whatever the time of day (see :func:`_env`);
3. starts a ``dharma worker --topology trust`` subprocess and times the first
   to the last of this run's decisions on ``ml.predictions`` (message
   timestamps), then stops it;
4. starts the baseline (:mod:`dharma.bench.faust_baseline`: consume and decode
   only) on the same events and reads its rate.

Both workers read a backlog, one after the other (2 cores are not shared
between them).  Steps 1-4 are repeated ``rounds`` times and the median pair
(by ratio) is reported, with every round's figures.
``python -m dharma.bench.trust_throughput [N]`` prints JSON.
"""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from dharma.bench.harness import stop
from dharma.streams.admin import registry_client
from dharma.streams.codec import AvroWire
from dharma.streams.settings import Settings
from dharma.streams.topics import AUDIT_LOGS, PREDICTIONS

__all__ = ["access_events", "measure_trust_throughput"]

#: Events of a round are dated this far apart, ending a few seconds before they are
#: produced: fresh for the worker's clock, and their sessions open.
SPACING_MS = 1


def access_events(n: int, tag: str, seed: int = 11,
                  start_ms: int | None = None) -> list[dict[str, Any]]:
    """``n`` seeded access requests: ~70 % ALLOW, DENY, CHALLENGE and forbidden writes,
    dated from ``start_ms`` (default: so that the last is 5 s old), each authenticated
    a minute before it (recent when decided)."""
    rng = random.Random(seed)
    if start_ms is None:
        start_ms = time.time_ns() // 1_000_000 - n * SPACING_MS - 5_000
    out = []
    for i in range(n):
        user, ts = f"bench_user_{i % 500}", start_ms + i * SPACING_MS
        roll = rng.random()
        out.append({
            "event_id": f"bench-{tag}-{i}", "ts": ts, "event_type": "access_request",
            "user_id": user, "roles": ["intern"] if 0.70 <= roll < 0.85 else ["admin", "developer"],
            "resource": f"database/production/db_{i % 50}",
            "action": "write" if roll >= 0.95 else "read",
            "device": {"device_id": f"dev_{i % 500}", "os": "Ubuntu 22.04", "encrypted": True,
                       "firewall": True, "antivirus": True, "compliance_score": 95.0,
                       "patch_level": "latest"},
            "mfa_enabled": not 0.85 <= roll < 0.95, "last_auth_ts": ts - 60_000,
            "source_ip": "203.0.113.7" if roll >= 0.95 else f"10.0.{i % 200}.{i % 250}",
            "location": {"name": "Office", "country": None, "lat": None, "lon": None},
            "risk_reason": None,
        })
    return out


def _end_offsets(settings: Settings, topic: str) -> list[TopicPartition]:
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": "dharma-bench-probe"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return [TopicPartition(topic, p, consumer.get_watermark_offsets(
            TopicPartition(topic, p), timeout=10)[1]) for p in parts]
    finally:
        consumer.close()


def _commit(settings: Settings, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def _produce(settings: Settings, events: list[dict[str, Any]]) -> float:
    wire, producer = AvroWire(registry_client(settings)), Producer(
        {**settings.kafka.confluent_config(), "linger.ms": 20})
    started = time.perf_counter()
    for event in events:
        key = wire.encode(AUDIT_LOGS.key_subject, event["user_id"])
        value = wire.encode(AUDIT_LOGS.value_subject, event)
        while True:
            try:
                producer.produce(AUDIT_LOGS.name, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    return time.perf_counter() - started


def _env(settings: Settings, group: str) -> dict[str, str]:
    # Business hours are judged at the worker's clock: a fixed-offset zone where it is
    # about noon now, every day a business day, so every run decides the same mix
    # whatever the time and day it runs at.
    offset = 12 - time.gmtime().tm_hour
    return {**os.environ, "DHARMA_WORKER_APP_ID": group, "DHARMA_WORKER_METRICS_PORT": "0",
            "DHARMA_TRUST_TIMEZONE": "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}",
            "DHARMA_TRUST_BUSINESS_DAYS": "1,2,3,4,5,6,7",
            "DHARMA_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "DHARMA_REGISTRY_URL": settings.registry.url,
            "DHARMA_POSTGRES_DSN": settings.postgres.dsn.get_secret_value(),
            "DHARMA_REDIS_URL": settings.redis.url.get_secret_value()}


def _decision_times(settings: Settings, start: list[TopicPartition], tag: str, n: int,
                    timeout_s: float) -> list[int]:
    """Message timestamps (ms) of this run's decisions on ml.predictions.

    Records are matched on their event id's bytes, not decoded: this reader
    runs beside the worker on the same two cores and must not take their time.
    """
    consumer = Consumer({**settings.kafka.confluent_config(), "enable.auto.commit": False,
                         "group.id": f"dharma-bench-{tag}"})
    consumer.assign(start)
    prefix, times = f"bench-{tag}-".encode(), list[int]()
    deadline = time.monotonic() + timeout_s
    try:
        while len(times) < n and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if not msg.error() and prefix in (msg.value() or b""):
                    times.append(msg.timestamp()[1])
    finally:
        consumer.close()
    return times


def _run_trust(settings: Settings, group: str, tag: str, n: int, timeout_s: float,
               log: Any) -> dict[str, Any]:
    start = _end_offsets(settings, PREDICTIONS.name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dharma.cli", "worker", "--topology", "trust",
         "--no-setup", "--log-level", "warning"],
        env=_env(settings, group), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        times = sorted(_decision_times(settings, start, tag, n, timeout_s))
    finally:
        stop(proc)
    counted = sum(1 for t in times if t > times[0]) if times else 0
    seconds = (times[-1] - times[0]) / 1000 if len(times) > 1 else 0.0
    return {"decisions": len(times), "seconds": seconds,
            "rate": counted / seconds if seconds > 0 else 0.0}


def _run_baseline(settings: Settings, group: str, n: int, timeout_s: float,
                  log: Any) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dharma.bench.faust_baseline", "--topic", AUDIT_LOGS.name,
         "--count", str(n)],
        env=_env(settings, group), stdout=subprocess.PIPE, stderr=log,
        start_new_session=True)
    lines: queue.Queue[bytes] = queue.Queue()
    assert proc.stdout is not None
    reader = proc.stdout

    def pump() -> None:
        for line in reader:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if b'{"events"' in line:  # tolerate terminal noise before the JSON
                result: dict[str, Any] = json.loads(line[line.index(b'{"events"'):])
                return result
    finally:
        stop(proc)
    return {"events": 0, "seconds": 0.0, "rate": 0.0, "error": "baseline timed out"}


def _round(settings: Settings, n_events: int, timeout_s: float, log: Any) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    group = f"bench{tag}"
    end = _end_offsets(settings, AUDIT_LOGS.name)
    for name in ("trust", "baseline"):
        _commit(settings, f"{group}-{name}", end)
    produce_s = _produce(settings, access_events(n_events, tag))
    trust = _run_trust(settings, group, tag, n_events, timeout_s, log)
    baseline = _run_baseline(settings, group, n_events, timeout_s, log)
    ratio = trust["rate"] / baseline["rate"] if baseline.get("rate") else 0.0
    return {"produce_seconds": round(produce_s, 2), "trust": trust, "baseline": baseline,
            "ratio": round(ratio, 3)}


def measure_trust_throughput(settings: Settings, n_events: int = 30_000, rounds: int = 3,
                             timeout_s: float = 90.0, log_path: str | None = None
                             ) -> dict[str, Any]:
    """Decisions/s of the trust topology vs a decode-only Faust agent on the same events.

    ``rounds`` pairs of runs, each on freshly produced events; the figure is the
    median pair by ratio (this shared machine moves single runs by about 10 %).
    """
    with open(log_path or os.devnull, "ab") as log:
        runs = [_round(settings, n_events, timeout_s, log) for _ in range(rounds)]
    median = sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2]
    return {"events": n_events, "rounds": [
                {"trust_per_s": round(r["trust"]["rate"]), "faust_per_s": round(
                    r["baseline"].get("rate", 0.0)), "ratio": r["ratio"]} for r in runs],
            "trust": median["trust"], "baseline": median["baseline"],
            "ratio": median["ratio"]}


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    print(json.dumps(measure_trust_throughput(Settings(), count), indent=2))
