"""Avro serde round trip of a contract through the embedded registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

pytestmark = pytest.mark.integration


def contract(name: str) -> str:
    return resources.files("dharma.schemas").joinpath(name).read_text(encoding="utf-8")


def test_metrics_raw_round_trip(registry_url: str) -> None:
    schema_str = contract("metrics.raw-value.avsc")
    ctx = SerializationContext("metrics.raw", MessageField.VALUE)
    sample = {
        "source": "web-server-01",
        "metric": "memory_utilization",
        "value": 71.5,
        "ts": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
        "labels": {"env": "prod"},
        "unit": "percent",
    }
    writer = SchemaRegistryClient({"url": registry_url})
    payload = AvroSerializer(writer, schema_str)(sample, ctx)
    assert payload is not None and payload[0] == 0
    schema_id = int.from_bytes(payload[1:5], "big")
    assert writer.get_latest_version("metrics.raw-value").schema_id == schema_id
    reader = SchemaRegistryClient({"url": registry_url})  # empty cache: fetches by id
    assert AvroDeserializer(reader)(payload, ctx) == sample


def test_contract_evolution_under_backward(registry_url: str) -> None:
    base = json.loads(contract("metrics.raw-value.avsc"))
    client = SchemaRegistryClient({"url": registry_url})
    subject = "evolution.metrics.raw-value"
    client.register_schema(subject, Schema(json.dumps(base), "AVRO"))
    required = {**base, "fields": [*base["fields"], {"name": "host", "type": "string"}]}
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(json.dumps(required), "AVRO"))
    assert refused.value.http_status_code == 409
    retyped = {
        **base,
        "fields": [{**f, "type": "int"} if f["name"] == "value" else f for f in base["fields"]],
    }
    with pytest.raises(SchemaRegistryError) as refused_type:
        client.register_schema(subject, Schema(json.dumps(retyped), "AVRO"))
    assert refused_type.value.http_status_code == 409
    optional = {
        **base,
        "fields": [*base["fields"], {"name": "host", "type": ["null", "string"], "default": None}],
    }
    client.register_schema(subject, Schema(json.dumps(optional), "AVRO"))
    assert client.get_versions(subject) == [1, 2]
