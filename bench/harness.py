"""Benchmark harness: a private embedded stack, an Avro load, workers as subprocesses.

Every benchmark runs against a fresh stack on free loopback ports (the broker
keeps messages in memory, so each run starts from empty topics) and measures
its baselines in the same run.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from dharma.infra.stack.ephemeral import ephemeral_stack
from dharma.streams.settings import Settings


@contextmanager
def bench_stack() -> Iterator[tuple[Settings, dict[str, str]]]:
    """A private embedded stack; yields its settings and the env that points at it."""
    with ephemeral_stack(prefix="dharma-bench-") as (settings, env):
        yield settings, env


def metric_samples(n: int, series: int, seed: int = 1) -> Iterator[tuple[str, dict[str, Any]]]:
    """``n`` realistic samples over ``series`` series, one minute apart per series."""
    rng = random.Random(seed)
    start = int(time.time() * 1000) - (n // series + 1) * 60_000
    for i in range(n):
        s, step = i % series, i // series
        source = f"host-{s // 4:05d}"
        value = 50.0 + 10.0 * rng.random() + (s % 7)
        yield source, {"source": source, "metric": f"m{s % 4}", "value": value,
                       "ts": start + step * 60_000, "labels": {}, "unit": None}


def produce(settings: Settings, topic: str, records: Iterator[tuple[str, dict[str, Any]]]) -> int:
    """Produce with Confluent's AvroSerializer, as an external producer would."""
    from confluent_kafka import Producer

    from dharma.streams.admin import registry_client
    from dharma.streams.producer import AvroProducer

    producer = AvroProducer(Producer({**settings.kafka.confluent_config(), "linger.ms": 50,
                                      "queue.buffering.max.messages": 500_000}),
                            registry_client(settings))
    n = 0
    for key, value in records:
        producer.produce(topic, key, value)
        n += 1
        if n % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)
    return n


def bare_consumer_rate(settings: Settings, topic: str, expected: int,
                       decode: bool = True) -> float:
    """Messages/s of a plain confluent-kafka consumer (with ``AvroDeserializer``)."""
    from confluent_kafka import OFFSET_BEGINNING
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from dharma.streams.admin import registry_client

    deser = AvroDeserializer(registry_client(settings))
    ctx = SerializationContext(topic, MessageField.VALUE)
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False, "fetch.max.bytes": 52_428_800})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    seen, started = 0, time.perf_counter()
    deadline = started + 120
    while seen < expected and time.perf_counter() < deadline:
        for msg in consumer.consume(10_000, 1.0):
            if not msg.error():
                if decode:
                    deser(msg.value(), ctx)
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return seen / elapsed


def end_offsets(settings: Settings, topic: str) -> list[TopicPartition]:
    """The true end offset of every partition of ``topic``.

    Read to the end rather than asked: the embedded broker (Tansu) answers
    ``ListOffsets`` (watermarks) with the base offset of the last record batch,
    which lags the end by up to a batch.
    """
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": "dharma-bench-probe",
                         "enable.auto.commit": False})
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        end = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
               for p in parts}
        consumer.assign([TopicPartition(topic, p, o) for p, o in end.items()])
        while batch := consumer.consume(10_000, 1.0):
            for msg in batch:
                if not msg.error():
                    end[msg.partition()] = max(end[msg.partition()], (msg.offset() or 0) + 1)
        return [TopicPartition(topic, p, o) for p, o in end.items()]
    finally:
        consumer.close()


def skip_to_end(settings: Settings, group: str, topic: str) -> None:
    """Commit the end of ``topic`` for consumer group ``group`` (it reads only what
    comes next)."""
    from confluent_kafka import Consumer

    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=end_offsets(settings, topic), asynchronous=False)
    finally:
        consumer.close()


def start_worker(
    topology: str, env: dict[str, str], log: Path, app_id: str,
) -> subprocess.Popen[bytes]:
    """A ``dharma worker`` subprocess with its own consumer group."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dharma.cli", "worker", "--topology", topology,
             "--no-setup"],
            env={**os.environ, **env, "DHARMA_WORKER_APP_ID": app_id},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a worker subprocess; kill it if it does not stop within 30 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def steady_rate(count: Callable[[], int], expected: int, timeout: float = 300.0,
                interval: float = 0.2) -> tuple[float, int]:
    """Items/s seen by ``count()`` from its first non-zero reading until ``expected``.

    Measuring from the first reading excludes start-up (group join, recovery).
    """
    first_t, first_n, n = 0.0, 0, 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = count()
        now = time.monotonic()
        if n and not first_t:
            first_t, first_n = now, n
        if n >= expected:
            break
        time.sleep(interval)
    elapsed = time.monotonic() - first_t if first_t else 0.0
    return ((n - first_n) / elapsed if elapsed > 0 else 0.0), n


def faust_only_rate(env: dict[str, str], topic: str, count: int,
                    timeout_s: float = 180.0) -> float:
    """Events/s of a bare Faust agent that only consumes and decodes ``topic``."""
    import json
    import queue
    import threading

    proc = subprocess.Popen(
        [sys.executable, "-m", "dharma.bench.faust_baseline", "--topic", topic,
         "--count", str(count)],
        env={**os.environ, **env, "DHARMA_WORKER_APP_ID": f"base{uuid.uuid4().hex[:6]}"},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    lines: queue.Queue[bytes] = queue.Queue()
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: list(map(lines.put, out)), daemon=True).start()
    deadline = time.monotonic() + timeout_s
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if b'"rate"' in line:  # Faust's spinner may prefix terminal escapes
                return float(json.loads(line[line.index(b"{"):])["rate"])
    finally:
        stop(proc)
    return 0.0
