"""Ids and versions live in PostgreSQL, so they survive a registry restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

pytestmark = pytest.mark.integration

V1 = {"type": "record", "name": "Restart", "fields": [{"name": "a", "type": "long"}]}
V2 = {**V1, "fields": [*V1["fields"], {"name": "b", "type": "long", "default": 0}]}


def test_ids_survive_restart(start_registry: Callable[[], Any], subject: str) -> None:
    first = start_registry()
    client = SchemaRegistryClient({"url": first.url})
    schema_id = client.register_schema(subject, Schema(json.dumps(V1), "AVRO"))
    client.set_compatibility(subject, "FULL")
    assert first.stop() == 0

    second = start_registry()
    client = SchemaRegistryClient({"url": second.url})
    assert json.loads(client.get_schema(schema_id).schema_str or "null") == V1
    assert client.get_latest_version(subject).schema_id == schema_id
    assert client.get_compatibility(subject) == "FULL"
    assert client.register_schema(subject, Schema(json.dumps(V1), "AVRO")) == schema_id
    client.register_schema(subject, Schema(json.dumps(V2), "AVRO"))
    assert client.get_versions(subject) == [1, 2]
