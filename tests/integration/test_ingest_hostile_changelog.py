"""Hostile records on the ``series-stats`` changelog: the ingest worker recovers and serves.

Before a worker of a fresh consumer group starts, its ``series-stats``
changelog is written with one record per hostile kind, each under the key of a
series that is then fed (not JSON, a pickle that would create a marker file, a
list, a NaN, a wrong type, an unknown field, an oversized record, a negative
variance, a last sample a year ahead), and two records under keys Faust's own
JSON key decoding could not read (invalid UTF-8, a JSON object); a control
series gets valid statistics.  Today's worker stalls in recovery and stores
nothing.

The worker must store every sample, start each poisoned series afresh, resume
the control series from its record, count every refusal and run nothing.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hostile import (
    UNDECODABLE_KEYS,
    exec_pickle,
    hostile_json_values,
    rejected_count,
    worker_metrics,
    write_changelog,
)

from dharma.agents.validation.logic import SeriesStats
from dharma.agents.validation.state import SERIES_STATS_TABLE
from dharma.schemas import schema_text
from dharma.streams.admin import registry_client
from dharma.streams.checkpoint import table_key
from dharma.streams.producer import AvroProducer
from dharma.streams.topics import METRICS_RAW

pytestmark = pytest.mark.integration

METRIC, FED = "cpu_utilization", 20


def partition_of(settings: Any) -> Callable[[str], int]:
    """The ``metrics.raw`` partition of a source's samples (Confluent Avro key, librdkafka's
    default partitioner: CRC-32), so its table record is where a worker would write it."""
    ser = AvroSerializer(registry_client(settings), schema_text("metrics.raw-key"))
    context = SerializationContext("metrics.raw", MessageField.KEY)
    return lambda source: zlib.crc32(ser(source, context)) % METRICS_RAW.partitions


def stored(settings: Any, sources: list[str]) -> int:
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        row = conn.execute("SELECT count(*) FROM metrics_raw WHERE source = ANY(%s)", (sources,))
        return int(row.fetchone()[0])  # type: ignore[index]  # count(*) returns one row


def test_hostile_series_stats_never_stall_the_worker(settings: Any, start_worker: Any,
                                                    read_changelog: Any, poll: Any,
                                                    tmp_path: Path) -> None:
    group, prefix = f"hs{uuid.uuid4().hex[:8]}", f"hostile-{uuid.uuid4().hex[:6]}"
    start = int(time.time() * 1000) - 3_600_000
    good = SeriesStats(count=10, mean=40.0, var=2.0, last_value=41.0, last_ts=start - 1000)
    marker = tmp_path / "executed"
    values = {**hostile_json_values(good.to_dict()), "exec_pickle": exec_pickle(marker),
              "var_negative": orjson.dumps({**good.to_dict(), "var": -1.0}),
              "ahead": orjson.dumps({**good.to_dict(), "last_ts": start + 365 * 86_400_000})}
    source = {kind: f"{prefix}-{kind}" for kind in values}
    control = f"{prefix}-control"
    partition = partition_of(settings)
    records = [(partition(source[k]), table_key(f"{source[k]}|{METRIC}"), v)
               for k, v in values.items()]
    records += [(0, key, b"\x00junk") for key in UNDECODABLE_KEYS[:2]]
    records.append((partition(control), table_key(f"{control}|{METRIC}"),
                    orjson.dumps(good.to_dict())))
    changelog = f"{group}-ingest-{SERIES_STATS_TABLE}-changelog"
    write_changelog(settings, changelog, METRICS_RAW.partitions, records)
    worker = start_worker("ingest", DHARMA_WORKER_APP_ID=group)

    producer = AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))
    sources = [*source.values(), control]
    for i in range(FED):
        for src in sources:
            producer.produce("metrics.raw", src, {
                "source": src, "metric": METRIC, "value": 40.0 + i % 7, "ts": start + i * 1000,
                "labels": {}, "unit": "percent"})
    producer.flush()
    poll(lambda: stored(settings, sources) == FED * len(sources), "every sample stored",
         timeout=120)

    for kind, src in source.items():
        stats = poll(lambda s=src: (read_changelog(settings, changelog, f"{s}|{METRIC}") or {})
                     .get("count") == FED and s, f"{kind}: started afresh")
        assert stats, kind
    resumed = poll(lambda: (read_changelog(settings, changelog, f"{control}|{METRIC}") or {})
                   .get("count") == 10 + FED, "the control series resumed from its record")
    assert resumed
    assert not marker.exists(), "a changelog record ran code in the worker"

    text = worker_metrics(worker, poll)
    assert rejected_count(text, SERIES_STATS_TABLE) == len(values)
    assert worker.proc.poll() is None, "the worker stopped"
