"""``AvroWire`` against the real registry: round trips, Confluent interop, bad input.

Every value subject is encoded by us and decoded by Confluent's
``AvroDeserializer``, and encoded by Confluent's ``AvroSerializer`` and decoded
by us: any Confluent client interoperates with the agents.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dharma.schemas import schema_text
from dharma.streams.admin import registry_client
from dharma.streams.codec import AvroWire
from dharma.streams.errors import DecodeError

pytestmark = pytest.mark.integration

TS = 1_714_564_800_123
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ANOMALY = {
    "kind": "anomaly", "prediction_id": "web-01|cpu@1714564800123", "source": "web-01",
    "metric": "cpu", "ts": TS, "value": 97.5, "model": "ewma-zscore/1",
    "anomaly_score": 0.93, "is_anomaly": True, "warming_up": False, "confidence": 1.0,
    "expected": 41.0, "lower": 35.0, "upper": 47.0,
}
DEPLOYMENT = {
    "deployment_id": "d-1", "version": "2.1.0", "previous_version": "2.0.3",
    "status": "succeeded", "initiator": "ci",
}
DEVICE = {
    "device_id": "device_12345", "os": "Ubuntu 22.04", "encrypted": True, "firewall": True,
    "antivirus": False, "compliance_score": 87.5, "patch_level": "recent",
}

#: subject -> (value to encode, value decoded); the union branch in tuple notation.
CASES: dict[str, tuple[Any, Any]] = {
    "metrics.raw-value": ({
        "source": "web-server-01", "metric": "memory_utilization", "value": 71.5, "ts": TS,
        "labels": {"env": "prod"}, "unit": "percent"}, None),
    "ml.predictions-value": (("dharma.predictions.AnomalyPrediction", ANOMALY), ANOMALY),
    "alerts.notifications-value": ({
        "alert_id": "a-1", "fingerprint": "f00d", "status": "firing", "severity": "critical",
        "kind": "anomaly", "source": "web-01", "summary": "cpu anomalous", "ts": TS,
        "labels": {"metric": "cpu"}}, None),
    "infrastructure.events-value": ({
        "event_id": "e-1", "ts": TS, "type": "deployment", "resource_id": "web-01",
        "attributes": ("dharma.infra.DeploymentAttributes", DEPLOYMENT)}, "plain"),
    "audit.logs-value": ({
        "event_id": "ev-1", "ts": TS, "event_type": "access_request", "user_id": "u-1",
        "roles": ["developer"], "resource": "database/production/customer_db",
        "action": "read", "device": DEVICE, "mfa_enabled": True, "last_auth_ts": TS - 60_000,
        "source_ip": "10.0.0.7",
        "location": {"name": "Office", "country": "DE", "lat": 52.5, "lon": 13.4},
        "risk_reason": None}, None),
    "metrics.raw.dlq-value": ({
        "topic": "metrics.raw", "partition": 3, "offset": 42, "reason": "value: not finite",
        "error_kind": "contract_violation", "original_key": b"web-01",
        "original_value": b"\x00\x00\x00\x00\x01garbage", "ts": TS}, None),
    "metrics.raw-key": ("web-server-01", None),
}


def expected(subject: str) -> Any:
    value, decoded = CASES[subject]
    if decoded == "plain":  # nested union branch: decoded as the plain record
        return {**value, "attributes": value["attributes"][1]}
    return value if decoded is None else decoded


def epoch_ms(value: Any) -> Any:
    """Confluent's deserializer honours logical types; ours keeps epoch milliseconds."""
    if isinstance(value, datetime):
        return (value - EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, dict):
        return {k: epoch_ms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [epoch_ms(v) for v in value]
    return value


def context(subject: str) -> SerializationContext:
    topic, _, field = subject.rpartition("-")
    return SerializationContext(topic, MessageField.KEY if field == "key" else MessageField.VALUE)


@pytest.fixture(scope="module")
def client(settings: Any) -> SchemaRegistryClient:
    return registry_client(settings)


@pytest.mark.parametrize("subject", list(CASES))
def test_ours_encodes_confluent_decodes(
    settings: Any, client: SchemaRegistryClient, subject: str
) -> None:
    wire = AvroWire(client)
    data = wire.encode(subject, CASES[subject][0])
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == client.get_latest_version(subject).schema_id
    fresh = registry_client(settings)  # empty caches: the schema is fetched by id
    decoded = AvroDeserializer(fresh)(data, context(subject))
    assert epoch_ms(decoded) == expected(subject)
    # and our own decoder, from a cold cache
    assert AvroWire(fresh).decode(subject, data) == expected(subject)


@pytest.mark.parametrize("subject", list(CASES))
def test_confluent_encodes_ours_decodes(client: SchemaRegistryClient, subject: str) -> None:
    serializer = AvroSerializer(client, schema_text(subject),
                                conf={"auto.register.schemas": False, "use.latest.version": True})
    data = serializer(CASES[subject][0], context(subject))
    assert data is not None
    assert AvroWire(client).decode(subject, data) == expected(subject)


class CountingClient(SchemaRegistryClient):
    """The real client, counting lookups by id (a spy, not a fake)."""

    def __init__(self, conf: dict[str, Any]) -> None:
        super().__init__(conf)
        self.lookups = 0
        self.threads: set[str] = set()

    def get_schema(self, *args: Any, **kwargs: Any) -> Any:
        self.lookups += 1
        self.threads.add(threading.current_thread().name)
        return super().get_schema(*args, **kwargs)


@pytest.fixture
def wire(settings: Any) -> AvroWire:
    return AvroWire(CountingClient(settings.registry.client_config()))


@pytest.fixture
def good(wire: AvroWire) -> bytes:
    return wire.encode("metrics.raw-value", CASES["metrics.raw-value"][0])


def kind_of(wire: AvroWire, data: bytes | None) -> tuple[str, str]:
    with pytest.raises(DecodeError) as info:
        wire.decode("metrics.raw-value", data)
    return info.value.error_kind, info.value.reason


@pytest.mark.parametrize("data", [b"", None])
def test_empty_message_is_undecodable(wire: AvroWire, data: bytes | None) -> None:
    assert kind_of(wire, data) == ("undecodable", "empty message value")


def test_short_header_is_undecodable(wire: AvroWire) -> None:
    kind, reason = kind_of(wire, b"\x00\x00\x01")
    assert kind == "undecodable" and "shorter than the wire header" in reason


def test_wrong_magic_byte_is_undecodable(wire: AvroWire, good: bytes) -> None:
    kind, reason = kind_of(wire, b"\x01" + good[1:])
    assert kind == "undecodable" and "magic byte 1" in reason


def test_unknown_schema_id_is_cached_negatively(wire: AvroWire, good: bytes) -> None:
    unknown = struct.pack(">bI", 0, 987_654) + good[5:]
    kind, reason = kind_of(wire, unknown)
    assert kind == "unknown_schema" and "987654" in reason
    registry = wire.registry
    assert isinstance(registry, CountingClient)
    assert registry.lookups == 1
    assert kind_of(wire, unknown)[0] == "unknown_schema"
    assert registry.lookups == 1  # within the TTL: answered from the negative cache


def test_truncated_body_is_undecodable(wire: AvroWire, good: bytes) -> None:
    kind, reason = kind_of(wire, good[:-3])
    assert kind == "undecodable" and "does not match schema id" in reason


def test_trailing_bytes_are_undecodable(wire: AvroWire, good: bytes) -> None:
    kind, reason = kind_of(wire, good + b"\x00\x01")
    assert kind == "undecodable" and "2 trailing bytes" in reason


def test_decoding_an_older_writer_schema_fills_defaults(
    wire: AvroWire, client: SchemaRegistryClient
) -> None:
    """A producer on an older contract (no ``unit``) is read into ours, unit None."""
    old = json.loads(schema_text("metrics.raw-value"))
    old["fields"] = [f for f in old["fields"] if f["name"] != "unit"]
    subject = "codec.older.metrics.raw-value"
    sid = client.register_schema(subject, Schema(json.dumps(old), "AVRO"))
    serializer = AvroSerializer(client, json.dumps(old),
                                conf={"subject.name.strategy": lambda _ctx, _name: subject})
    record = {k: v for k, v in CASES["metrics.raw-value"][0].items() if k != "unit"}
    data = serializer(record, context("metrics.raw-value"))
    assert data is not None and int.from_bytes(data[1:5], "big") == sid
    assert wire.decode("metrics.raw-value", data) == {**record, "unit": None}


def test_a_flood_of_random_schema_ids_costs_bounded_lookups_off_the_loop(
    settings: Any, good: bytes
) -> None:
    """Hostile records naming random schema ids: a worker's codec looks up a bounded
    number per batch, in threads (never on the event loop), and keeps bounded caches;
    every one is rejected as ``unknown_schema`` and the good record still decodes."""
    client = CountingClient(settings.registry.client_config())
    wire = AvroWire(client, lookup_on_miss=False)
    rng = random.Random(7)
    batches = [[struct.pack(">bI", 0, rng.randrange(10**6, 2**32)) + good[5:]
                for _ in range(500)] + [good] for _ in range(12)]

    async def work() -> list[str]:
        kinds = []
        for batch in batches:
            await wire.resolve(batch)
            for data in batch[:-1]:
                kinds.append(kind_of(wire, data)[0])
            assert wire.decode("metrics.raw-value", batch[-1]) == CASES["metrics.raw-value"][0]
        return kinds

    kinds = asyncio.run(work())
    assert set(kinds) == {"unknown_schema"} and len(kinds) == 12 * 500
    per_batch = wire.writers.lookups_per_batch
    assert client.lookups <= 12 * (per_batch + 1)  # +1: our own contract's id, once
    assert threading.main_thread().name not in client.threads
    assert len(wire.writers.unknown) <= wire.writers.unknown.maxsize
    assert len(wire.writers.found) <= wire.writers.size


def test_a_known_id_is_resolved_for_a_worker_and_an_unknown_one_remembered(
    settings: Any, good: bytes
) -> None:
    client = CountingClient(settings.registry.client_config())
    wire = AvroWire(client, lookup_on_miss=False)
    unknown = struct.pack(">bI", 0, 987_655) + good[5:]
    with pytest.raises(DecodeError, match="was not looked up"):
        wire.decode("metrics.raw-value", good)  # not resolved: no lookup on the loop
    assert client.lookups == 0
    asyncio.run(wire.resolve([good, unknown, good]))
    assert client.lookups == 2
    assert wire.decode("metrics.raw-value", good) == CASES["metrics.raw-value"][0]
    assert kind_of(wire, unknown) == ("unknown_schema", "schema id 987655 is not in the registry")
    asyncio.run(wire.resolve([good, unknown]))
    assert client.lookups == 2  # both answered from the caches
