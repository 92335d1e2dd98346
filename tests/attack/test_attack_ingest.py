"""Red-team findings on ingest: the codec, writer-schema lookups, the metrics sink.

Each test is evidence of a finding: its docstring gives the threat, the steps,
what happens today and what should happen.  They are strict xfails so the suite
stays green until the finding is fixed (then the xfail marker must go).

A producer here is what the project's own ``AvroProducer`` is: Confluent's
``AvroSerializer``, which registers the schema it writes with by default
(``auto.register.schemas``), so whoever produces can register a schema.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import uuid
from typing import Any

import fastavro
import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema

from dharma.schemas import load_schema
from dharma.sinks.postgres import PostgresMetricsSink
from dharma.streams.admin import registry_client
from dharma.streams.codec import AvroWire
from dharma.streams.errors import ContractViolation, DecodeError
from dharma.streams.producer import AvroProducer
from dharma.streams.records import validate_metric
from dharma.streams.tailer import Tailer

HEADER = struct.Struct(">bI")


def zigzag(n: int) -> bytes:
    """Avro's variable-length zig-zag encoding of a long."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def register(settings: Any, subject: str, schema: dict[str, Any]) -> int:
    return registry_client(settings).register_schema(subject, Schema(json.dumps(schema), "AVRO"))


def sample(source: str, ts: int, value: float = 1.0) -> dict[str, Any]:
    return {"source": source, "metric": "cpu", "value": value, "ts": ts, "labels": {},
            "unit": None}


@pytest.mark.integration
def test_a_zero_width_array_in_a_writer_schema_is_refused(settings: Any) -> None:
    """Threat: a producer registers (under any subject: the codec never checks that a
    writer schema id belongs to the topic's subject) the ``metrics.raw`` contract plus a
    field ``pad: array<null>`` (default ``[]``, so even BACKWARD-compatible), then writes
    a record whose ``pad`` claims N items: each null item is 0 bytes, so N costs only the
    varint.

    Steps: such a record with N = 10**7 (7 bytes of count), decoded the way a worker does
    (``resolve`` then ``decode`` into the ``metrics.raw-value`` contract).

    Happens: it decodes, after fastavro has skipped 10**7 items (~0.12 s; 12 ns each):
    nothing is refused.  With N = 2**62 (9 bytes) the loop runs for ~1,800 years in C,
    on the event loop (``check_events`` decodes there): the worker stops heartbeating, the
    group rebalances, the next owner of the partition meets the same record. One record
    stalls ingest, anomaly or trust (its ``audit.logs`` twin: every PEP waits) for good.

    Should: writer schemas are vetted when looked up: an array or map whose items have
    zero width (null, empty record, fixed(0)) is refused (``unknown_schema``/``undecodable``
    dead letter), and a writer schema id is accepted only if the registry lists it under
    the topic's subject.
    """
    tag = uuid.uuid4().hex[:8]
    hostile = load_schema("metrics.raw-value")
    hostile["fields"].append({"name": "pad", "type": {"type": "array", "items": "null"},
                              "default": []})
    sid = register(settings, f"attack-bomb-{tag}-value", hostile)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(hostile),
                               {**sample(f"bomb-{tag}", int(time.time() * 1000)), "pad": []})
    data = HEADER.pack(0, sid) + body.getvalue()[:-1] + zigzag(10**7) + b"\x00"
    wire = AvroWire(registry_client(settings), lookup_on_miss=False)
    asyncio.run(wire.resolve([data]))
    with pytest.raises(DecodeError):
        wire.decode("metrics.raw-value", data)


@pytest.mark.integration
def test_a_flood_of_forged_schema_ids_does_not_starve_a_real_one(settings: Any) -> None:
    """Threat: while a low-rate producer's schema id is not cached (every id after a worker
    restart; a new version after a schema change), a producer floods the topic with random
    schema ids: 33 fresh ids per batch, each twice.

    Steps: a registered schema id sent once per batch among the flood, three batches, each
    looked up the worker's way (``WriterSchemas.resolve``: at most 32 ids per batch, the
    most frequent first, ties to the smallest id).

    Happens: the real id is never looked up (it appears once; the forged ones twice), so
    ``get`` rejects it in every batch: ``unknown_schema: ... was not looked up`` and its
    records go to the DLQ, never to the agent.  On ``audit.logs`` this drops the MDM's
    ``posture_update`` and ``risk_signal`` records (revocations that never happen) while
    requests from the same producer are DENYed; on ``metrics.raw`` a series' samples
    are lost for the flood's duration.  Forged ids cost the attacker nothing: each is
    unknown for 30 s, so fresh ones are needed, and there are 2**32.

    Should: a valid record is not dead-lettered because of someone else's flood: e.g.
    hold (retry) records whose id was not looked up instead of rejecting them, or give
    lookups to ids that recur across batches / arrive in decodable records first.
    """
    tag = uuid.uuid4().hex[:8]
    real = load_schema("metrics.raw-value")
    real["fields"].append({"name": "origin", "type": ["null", "string"], "default": None})
    sid = register(settings, f"attack-legit-{tag}-value", real)
    wire = AvroWire(registry_client(settings), lookup_on_miss=False)
    base = 2_000_000_000 + (uuid.uuid4().int % 1_000_000) * 1000
    for batch in range(3):
        forged = [HEADER.pack(0, base + batch * 100 + k) + b"\x00" for k in range(33)]
        asyncio.run(wire.resolve([*forged, *forged, HEADER.pack(0, sid) + b"\x00"]))
        if sid in wire.writers.found:
            return
    wire.writers.get(sid)  # the reason it was refused


@pytest.mark.integration
def test_old_timestamps_do_not_create_a_partition_each(settings: Any) -> None:
    """Threat: a producer sends samples dated on distinct days since 2000-01-01 (the oldest
    accepted ``ts``; nothing bounds how old a sample may be).

    Steps: 100 valid samples, one per day of 2001, stored the way the ingest agent stores
    a batch (``PostgresMetricsSink.flush``, here into a table of the test's own).

    Happens: 100 new partitions (``CREATE TABLE ... PARTITION OF``, one DDL each, on the
    batch's path): about 9,500 reachable, each a permanent table in the catalog that
    every later query on ``metrics_raw`` plans over.  The cost of a hostile record is a
    DDL statement, not an insert.

    Should: samples older than a retention window (a setting) are contract violations,
    or land in a default partition; a batch never creates more than a few partitions.
    """
    dsn = settings.postgres.dsn.get_secret_value()
    table = f"attack_days_{uuid.uuid4().hex[:8]}"
    day_2001 = 978_307_200_000
    now = int(time.time() * 1000)
    batch = [validate_metric(sample(f"old-{day}", day_2001 + day * 86_400_000), now, 300_000)
             for day in range(100)]

    async def store() -> None:
        sink = PostgresMetricsSink(dsn, table=table)
        await sink.flush(batch)
        await sink.close()

    asyncio.run(store())
    with psycopg.connect(dsn) as conn:
        (partitions,) = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", (table,)
        ).fetchone() or (0,)
    assert partitions <= 2


@pytest.mark.integration
def test_a_preempted_sample_is_not_silently_discarded(settings: Any, start_worker: Any,
                                                      poll: Any) -> None:
    """Threat: collectors scrape on a fixed grid (every 10 s on the second), so the
    ``ts`` of the next samples is known; a producer writes its own values for them first
    (up to 300 s ahead is accepted).

    Steps: through the ingest worker, a forged sample (value 0) at ``(source, cpu, T)``,
    then the genuine one (value 42) at the same key.

    Happens: the genuine sample is dropped as a "replay" by ``ON CONFLICT (source, metric,
    ts) DO NOTHING`` (``sinks/postgres.py``): PostgreSQL keeps the forged 0, nothing goes
    to ``metrics.raw.dlq``, no counter moves.  The key identifies a replay only if the
    value is the same; here it is not.

    Should: a second sample under a stored key with a *different* value is reported (dead
    letter ``conflict`` with its bytes, a counter), not taken for a replay.
    """
    start_worker("ingest")
    source = f"pre-{uuid.uuid4().hex[:8]}"
    ts = int(time.time() * 1000) // 10_000 * 10_000 + 20_000  # a scrape slot 10-20 s ahead
    producer = AvroProducer(Producer(settings.kafka.confluent_config()),
                            registry_client(settings))
    with Tailer(settings, ["metrics.raw.dlq"], from_beginning=True) as dlq:
        producer.produce("metrics.raw", source, sample(source, ts, 0.0))
        producer.flush()
        poll(lambda: _stored(settings, source, ts) == [0.0], "the forged sample stored")
        producer.produce("metrics.raw", source, sample(source, ts, 42.0))
        producer.flush()
        letters: list[dict[str, Any]] = []

        def reported() -> bool:
            letters.extend(v for _, v in dlq.poll(0.5)
                           if source.encode() in (v["original_value"] or b""))
            return bool(letters) or _stored(settings, source, ts) == [42.0]

        poll(reported, "the genuine sample stored or reported", timeout=30)


def _stored(settings: Any, source: str, ts: int) -> list[float]:
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        rows = conn.execute("SELECT value FROM metrics_raw WHERE source = %s AND ts = "
                            "to_timestamp(%s / 1000.0)", (source, ts)).fetchall()
    return [row[0] for row in rows]


@pytest.mark.integration
def test_a_record_too_large_to_dead_letter_loses_nothing(settings: Any, start_worker: Any,
                                                         poll: Any) -> None:
    """Threat: a producer with default settings (librdkafka ``message.max.bytes`` =
    1,000,000) sends an undecodable value of 999,900 bytes, next to genuine records.

    Steps: through the ingest worker, that record and a genuine sample of the same key
    (so the same partition and, sent together, the same batch).

    Happens: the dead letter (the original bytes plus topic, reason, key) is larger than
    the worker's producer accepts: ``Emitter.emit`` catches only ``BufferError``, so
    ``KafkaException(MSG_SIZE_TOO_LARGE)`` escapes ``send_dead_letters`` and the agent
    (``Crashed reason=KafkaException...`` in the log); Faust restarts it past the batch.
    Neither record is stored or dead-lettered, and a worker restarted on the same group
    does not see them again: the genuine sample is lost without trace (measured: not
    stored, no dead letter, not redelivered after a restart).  The trust agent
    dead-letters the same way before deciding: the batch's requests get no decision (the
    PEP waits for ever) and its posture updates and risk signals are dropped.

    Should: a dead letter that cannot be produced whole is produced truncated (with the
    original size and a hash) or replaced by a reference, and an emit failure of one
    record never escapes the batch: the genuine sample is stored, the big one
    dead-lettered.
    """
    start_worker("ingest")
    source = f"big-{uuid.uuid4().hex[:8]}"
    producer = AvroProducer(Producer(settings.kafka.confluent_config()),
                            registry_client(settings))
    raw = Producer(settings.kafka.confluent_config())
    with Tailer(settings, ["metrics.raw.dlq"], from_beginning=True) as dlq:
        raw.produce("metrics.raw", key=source.encode(), value=b"\x07" + bytes(999_900))
        raw.flush(30)
        ts = int(time.time() * 1000)
        producer.produce("metrics.raw", source, sample(source, ts))
        producer.flush()
        letters: list[dict[str, Any]] = []

        def nothing_lost() -> bool:
            letters.extend(v for _, v in dlq.poll(0.5) if v["original_key"] == source.encode())
            return bool(letters) and _stored(settings, source, ts) == [1.0]

        poll(nothing_lost, "the big record dead-lettered and the genuine one stored",
             timeout=30)


@pytest.mark.parametrize("source", ["web-01\u200b", "10-bew\u202e", "web-01\u2028level=ok"])
def test_invisible_and_bidi_characters_are_contract_violations(source: str) -> None:
    """Threat: a producer names a series ``web-01`` + a zero-width space (a look-alike of
    the real ``web-01``: alerts and silences that read the same but are not), or puts a
    right-to-left override in it (an alert summary renders reversed), or a U+2028 line
    separator (a fake line in logs and alert text).

    Steps: ``validate_metric`` of a sample with such a source.

    Happens: accepted: ``NAME_PATTERN`` (``streams/records.py``) excludes C0, DEL and C1
    only; U+200B, U+202E and U+2028 are format/separator characters (Cf, Zl).

    Should: names refuse Unicode format and separator characters (categories Cf, Zl, Zp)
    as they refuse control characters (NFC-normalised, perhaps), as a contract violation.
    """
    with pytest.raises(ContractViolation):
        validate_metric(sample(source, int(time.time() * 1000)), int(time.time() * 1000),
                        300_000)
