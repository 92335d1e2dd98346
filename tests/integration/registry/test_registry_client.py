"""The real confluent-kafka client against the embedded registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

pytestmark = pytest.mark.integration

V1: dict[str, Any] = {
    "type": "record",
    "name": "R",
    "namespace": "t",
    "fields": [{"name": "a", "type": "int"}],
}


def avro(doc: dict[str, Any]) -> Schema:
    return Schema(json.dumps(doc), "AVRO")


def with_field(field: dict[str, Any]) -> Schema:
    return avro({**V1, "fields": [*V1["fields"], field]})


def error_of(call: Callable[[], object]) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as info:
        call()
    return info.value


def test_register_then_read_back(sr_client: SchemaRegistryClient, subject: str) -> None:
    schema_id = sr_client.register_schema(subject, avro(V1))
    fresh = SchemaRegistryClient({"url": sr_client._rest_client.base_urls[0]})
    assert json.loads(fresh.get_schema(schema_id).schema_str or "null") == V1
    latest = fresh.get_latest_version(subject)
    assert (latest.schema_id, latest.version, latest.subject) == (schema_id, 1, subject)
    assert fresh.get_version(subject, 1).schema_id == schema_id
    assert fresh.get_versions(subject) == [1]
    assert subject in fresh.get_subjects()


def test_same_schema_same_id_across_subjects(
    sr_client: SchemaRegistryClient, registry_url: str, subject: str
) -> None:
    first = sr_client.register_schema(subject, avro(V1))
    again = SchemaRegistryClient({"url": registry_url})
    reformatted = Schema(json.dumps(V1, indent=4, sort_keys=True), "AVRO")
    assert again.register_schema(subject, reformatted) == first
    assert again.get_versions(subject) == [1]
    other = subject.replace("-value", "-key")
    assert again.register_schema(other, avro(V1)) == first
    assert {subject, other} <= set(again.get_subjects_by_schema_id(first))
    pairs = {(v.subject, v.version) for v in again.get_schema_versions(first)}
    assert {(subject, 1), (other, 1)} <= pairs


def test_lookup_schema(sr_client: SchemaRegistryClient, subject: str) -> None:
    schema_id = sr_client.register_schema(subject, avro(V1))
    found = SchemaRegistryClient({"url": sr_client._rest_client.base_urls[0]}).lookup_schema(
        subject, avro(V1)
    )
    assert (found.schema_id, found.version, found.subject) == (schema_id, 1, subject)
    missing = error_of(
        lambda: sr_client.lookup_schema(subject, with_field({"name": "z", "type": "int"}))
    )
    assert (missing.http_status_code, missing.error_code) == (404, 40403)
    nobody = error_of(lambda: sr_client.lookup_schema(subject + "-none", avro(V1)))
    assert (nobody.http_status_code, nobody.error_code) == (404, 40401)


def test_not_found_codes(sr_client: SchemaRegistryClient, subject: str) -> None:
    assert error_of(lambda: sr_client.get_schema(987654321)).error_code == 40403
    assert error_of(lambda: sr_client.get_latest_version(subject)).error_code == 40401
    sr_client.register_schema(subject, avro(V1))
    assert error_of(lambda: sr_client.get_version(subject, 7)).error_code == 40402


def test_compatibility_config(sr_client: SchemaRegistryClient, subject: str) -> None:
    assert sr_client.get_compatibility() == "BACKWARD"
    unset = error_of(lambda: sr_client.get_compatibility(subject))
    assert (unset.http_status_code, unset.error_code) == (404, 40408)
    assert sr_client.set_compatibility(subject, "FULL") == {"compatibility": "FULL"}
    assert sr_client.get_compatibility(subject) == "FULL"
    assert sr_client.get_compatibility() == "BACKWARD"
    bad = error_of(lambda: sr_client.set_compatibility(subject, "SIDEWAYS"))
    assert (bad.http_status_code, bad.error_code) == (422, 42203)


@pytest.mark.parametrize("path", ["/config", "/config/{subject}"])
@pytest.mark.parametrize("body", [
    b"", b"{}", b'{"compatibility": null}', b'{"compatibilty": "NONE"}',
    b'{"compatibility": "FULL", "mode": "READONLY"}'])
def test_a_config_update_without_a_level_is_42203_and_changes_nothing(
    registry_url: str, sr_client: SchemaRegistryClient, subject: str, path: str, body: bytes
) -> None:
    """Like Confluent's: an empty body or an unknown field never sets a level (it used to
    set NONE, turning off every compatibility check)."""
    sr_client.set_compatibility(subject, "FULL")
    url = registry_url + path.format(subject=subject)
    reply = httpx.put(url, content=body,
                      headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    assert (reply.status_code, reply.json()["error_code"]) == (422, 42203)
    assert sr_client.get_compatibility(subject) == "FULL"
    assert sr_client.get_compatibility() == "BACKWARD"


def test_backward_refuses_breaking_changes(sr_client: SchemaRegistryClient, subject: str) -> None:
    sr_client.register_schema(subject, avro(V1))
    no_default = with_field({"name": "b", "type": "string"})
    retyped = avro({**V1, "fields": [{"name": "a", "type": "string"}]})
    for breaking in (no_default, retyped):
        assert not sr_client.test_compatibility(subject, breaking)
        refused = error_of(partial(sr_client.register_schema, subject, breaking))
        assert (refused.http_status_code, refused.error_code) == (409, 409)
    with_default = with_field({"name": "b", "type": "string", "default": ""})
    assert sr_client.test_compatibility(subject, with_default, version=1)
    sr_client.register_schema(subject, with_default)
    assert sr_client.get_versions(subject) == [1, 2]


def test_none_and_forward_levels(sr_client: SchemaRegistryClient, subject: str) -> None:
    sr_client.register_schema(subject, avro(V1))
    sr_client.set_compatibility(subject, "FORWARD")
    assert sr_client.test_compatibility(subject, with_field({"name": "b", "type": "int"}))
    sr_client.set_compatibility(subject, "NONE")
    sr_client.register_schema(subject, avro({**V1, "fields": [{"name": "x", "type": "bytes"}]}))
    assert sr_client.get_versions(subject) == [1, 2]


def test_verbose_compatibility_messages(registry_url: str, subject: str) -> None:
    SchemaRegistryClient({"url": registry_url}).register_schema(subject, avro(V1))
    body = {"schema": json.dumps({**V1, "fields": [{"name": "a", "type": "string"}]})}
    url = f"{registry_url}/compatibility/subjects/{subject}/versions/latest?verbose=true"
    answer = httpx.post(url, json=body).json()
    assert answer["is_compatible"] is False
    assert any("/fields/0/type" in m for m in answer["messages"])


def test_delete_versions_and_subject(sr_client: SchemaRegistryClient, subject: str) -> None:
    sr_client.register_schema(subject, avro(V1))
    sr_client.register_schema(subject, with_field({"name": "b", "type": "int", "default": 0}))
    assert sr_client.delete_version(subject, 2) == 2
    assert sr_client.get_versions(subject) == [1]
    assert sr_client.get_versions(subject, deleted=True) == [1, 2]
    assert error_of(lambda: sr_client.delete_subject(subject, permanent=True)).error_code == 40405
    assert sr_client.delete_subject(subject) == [1]
    assert subject not in sr_client.get_subjects()
    assert sr_client.delete_subject(subject, permanent=True) == [1, 2]
    assert error_of(lambda: sr_client.get_versions(subject, deleted=True)).error_code == 40401


def test_concurrent_registrations_make_no_duplicates(registry_url: str, subject: str) -> None:
    schemas = [avro(V1)] * 4 + [
        with_field({"name": f"f{i}", "type": "int", "default": i}) for i in range(4)
    ]

    def register(schema: Schema) -> int:
        return SchemaRegistryClient({"url": registry_url}).register_schema(subject, schema)

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(register, schemas))
    assert len(set(ids[:4])) == 1  # V1 has one id however many times it races
    # Every pair here is BACKWARD compatible, so each distinct schema gets one version.
    assert SchemaRegistryClient({"url": registry_url}).get_versions(subject) == [1, 2, 3, 4, 5]


def test_http_shapes(registry_url: str, subject: str) -> None:
    root = httpx.get(registry_url + "/")
    assert (root.status_code, root.json()) == (200, {})
    assert root.headers["content-type"].startswith("application/vnd.schemaregistry.v1+json")
    assert httpx.get(registry_url + "/health").status_code == 200
    url = f"{registry_url}/subjects/{subject}/versions"
    invalid = httpx.post(url, json={"schema": '{"type": "record"}'})
    assert (invalid.status_code, invalid.json()["error_code"]) == (422, 42201)
    plain = httpx.post(
        url,
        content=json.dumps({"schema": json.dumps(V1)}),
        headers={"Content-Type": "application/json"},
    )
    assert plain.status_code == 200 and isinstance(plain.json()["id"], int)
    by_id = httpx.get(f"{registry_url}/schemas/ids/{plain.json()['id']}").json()
    assert set(by_id) == {"schema"}
    missing = httpx.get(registry_url + "/no/such/route")
    assert missing.status_code == 404 and missing.json()["error_code"] == 404
