"""The first chain through the real stack: producer → validation agent → stats, PostgreSQL, DLQ."""

from __future__ import annotations

import math
import os
import struct
import time
import uuid
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer

from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration


def samples(source: str, n: int, start_ms: int) -> list[dict[str, Any]]:
    return [{"source": source, "metric": "cpu_utilization", "value": 40.0 + i % 7,
             "ts": start_ms + i * 1000, "labels": {"env": "test"}, "unit": "percent"}
            for i in range(n)]


def stored(settings: Any, source: str) -> int:
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        row = conn.execute("SELECT count(*) FROM metrics_raw WHERE source = %s", (source,))
        return int(row.fetchone()[0])  # type: ignore[index]  # count(*) returns one row


@pytest.fixture
def producer(settings: Any) -> AvroProducer:
    return AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))


def test_good_input_reaches_stats_and_postgres_once(
        settings: Any, producer: Any, start_worker: Any, poll: Any, read_changelog: Any) -> None:
    worker = start_worker("ingest")
    source = f"web-{uuid.uuid4().hex[:6]}"
    start = int(time.time() * 1000) - 3_600_000
    batch = samples(source, 50, start)
    for value in batch:
        producer.produce("metrics.raw", source, value)
    producer.flush()
    poll(lambda: stored(settings, source) == 50, "50 samples stored")

    changelog = f'{worker.env["DHARMA_WORKER_APP_ID"]}-ingest-series-stats-changelog'

    def latest_stats(series: str) -> dict[str, Any] | None:
        return read_changelog(settings, changelog, series)

    stats = poll(lambda: latest_stats(f"{source}|cpu_utilization"),
                 "stats in the changelog")
    assert stats["count"] == 50
    assert stats["last_ts"] == batch[-1]["ts"]
    assert stats["last_value"] == batch[-1]["value"]
    mean = sum(v["value"] for v in batch) / len(batch)
    assert abs(stats["mean"] - mean) < 3.0 and stats["var"] > 0

    # The same events again (a producer retry, a replay): stored once, counted once.
    for value in batch:
        producer.produce("metrics.raw", source, value)
    producer.flush()
    poll(lambda: (latest_stats(f"{source}|cpu_utilization") or {})
         .get("skipped") == 50, "replayed samples seen and skipped")
    assert stored(settings, source) == 50
    assert (latest_stats(f"{source}|cpu_utilization") or {}).get("count") == 50


def test_bad_input_is_dead_lettered_and_good_input_keeps_flowing(
        settings: Any, producer: Any, start_worker: Any, poll: Any) -> None:
    start_worker("ingest")
    source = f"db-{uuid.uuid4().hex[:6]}"
    now = int(time.time() * 1000)
    raw = Producer(settings.kafka.confluent_config())
    junk = b"\x01" + os.urandom(39)  # never magic byte 0, which would read as a schema id
    unknown_id = b"\x00" + struct.pack(">I", 987_654) + b"\x02ab"
    with Tailer(settings, ["metrics.raw.dlq"], from_beginning=True) as dlq:
        raw.produce("metrics.raw", key=source.encode(), value=junk)
        raw.produce("metrics.raw", key=source.encode(), value=unknown_id)
        raw.flush()
        producer.produce("metrics.raw", source, {**samples(source, 1, now)[0], "value": math.nan})
        producer.produce("metrics.raw", source, {**samples(source, 1, now)[0], "value": math.inf})
        producer.produce("metrics.raw", source, samples(source, 1, now + 86_400_000 * 30)[0])
        for value in samples(source, 20, now - 60_000):
            producer.produce("metrics.raw", source, value)
        producer.flush()

        letters: list[dict[str, Any]] = []

        def five_letters() -> bool:
            letters.extend(v for _, v in dlq.poll(0.5)
                           if source.encode() in (v["original_key"] or b""))
            return len(letters) >= 5

        poll(five_letters, "five dead letters")
    poll(lambda: stored(settings, source) == 20, "the good samples stored")

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        by_kind.setdefault(letter["error_kind"], []).append(letter)
    assert sorted(by_kind) == ["contract_violation", "undecodable", "unknown_schema"]
    assert by_kind["undecodable"][0]["original_value"] == junk
    assert by_kind["unknown_schema"][0]["original_value"] == unknown_id
    assert "987654" in by_kind["unknown_schema"][0]["reason"]
    reasons = sorted(v["reason"] for v in by_kind["contract_violation"])
    assert any("inf" in r for r in reasons) and any("nan" in r for r in reasons)
    assert any("future" in r for r in reasons)
    assert all(v["topic"] == "metrics.raw" and v["offset"] >= 0 for v in letters)


def test_worker_serves_prometheus_metrics(
        settings: Any, producer: Any, start_worker: Any, poll: Any) -> None:
    import re

    import httpx

    worker = start_worker("ingest")
    port = int(poll(lambda: re.search(r"127\.0\.0\.1:(\d+)/metrics", worker.output()),
                    "metrics URL printed").group(1))
    source = f"cache-{uuid.uuid4().hex[:6]}"
    for value in samples(source, 5, int(time.time() * 1000) - 10_000):
        producer.produce("metrics.raw", source, value)
    producer.flush()
    poll(lambda: stored(settings, source) == 5, "samples stored")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'dharma_events_in_total{topic="metrics.raw"}' in text
    assert 'dharma_sink_rows_total{sink="postgres.metrics_raw"}' in text
    assert "dharma_processing_latency_seconds_bucket" in text
    assert "dharma_dead_lettered_total" in text


def test_a_control_character_in_a_name_dead_letters_that_sample_alone(
        settings: Any, producer: Any, start_worker: Any, poll: Any) -> None:
    """A NUL in one name of a batch of 1,000 good samples: that sample goes to the DLQ as a
    contract violation; PostgreSQL (which refuses NUL) stores the other 1,000."""
    start_worker("ingest")
    source = f"nul-{uuid.uuid4().hex[:6]}"
    good = samples(source, 1000, int(time.time() * 1000) - 3_600_000)
    bad = {**good[500], "metric": "cpu\x00utilization"}
    with Tailer(settings, ["metrics.raw.dlq"], from_beginning=True) as dlq:
        for value in [*good[:500], bad, *good[500:]]:
            producer.produce("metrics.raw", source, value)
        producer.flush()
        letters: list[dict[str, Any]] = []

        def dead_lettered() -> bool:
            letters.extend(v for _, v in dlq.poll(0.5)
                           if source.encode() in (v["original_key"] or b""))
            return bool(letters)

        poll(dead_lettered, "the bad sample dead-lettered")
        poll(lambda: stored(settings, source) == 1000, "the 1,000 good samples stored")
        letters.extend(v for _, v in dlq.poll(1.0) if source.encode() in (v["original_key"] or b""))
    assert [(v["error_kind"], v["reason"]) for v in letters] == [
        ("contract_violation", "metric: contains a control, format or line separator character")]
