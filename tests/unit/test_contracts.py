"""The ``.avsc`` contracts: they parse, they are documented, they hold what the issue asks.

Also guards against drift: the pydantic ``MetricSample`` must have exactly the
fields of the ``metrics.raw`` contract, and every topic must have its contracts.
"""

from __future__ import annotations

import functools
import json
import operator
import types
import typing
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import avro.schema
import fastavro
import pytest

from dharma.schemas import DEAD_LETTER, contract_file, contract_subjects, load_schema, schema_text
from dharma.streams.records import MetricSample
from dharma.streams.topics import DEAD_LETTER_TOPICS, TOPICS, all_topics

SUBJECTS = [*contract_subjects(), DEAD_LETTER]
TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}


def fields_of(schema: Any, name: str | None = None) -> dict[str, dict[str, Any]]:
    """Fields by name of a record schema, or of the union branch record ``name``."""
    if isinstance(schema, list):
        (schema,) = [b for b in schema if isinstance(b, dict) and b.get("name") == name]
    assert schema["type"] == "record"
    return {f["name"]: f for f in schema["fields"]}


def named(type_: Any) -> dict[str, Any]:
    assert isinstance(type_, dict), type_
    return type_


def walk_fields(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field of every record reachable from ``schema`` (nested, in unions, arrays, maps)."""
    if isinstance(schema, list):
        for branch in schema:
            yield from walk_fields(branch, path)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            for field in schema["fields"]:
                where = f"{path}{schema['name']}.{field['name']}"
                yield where, field
                yield from walk_fields(field["type"], f"{where}/")
        elif schema.get("type") == "array":
            yield from walk_fields(schema["items"], path)
        elif schema.get("type") == "map":
            yield from walk_fields(schema["values"], path)


def walk_records(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, list):
        for branch in schema:
            yield from walk_records(branch)
    elif isinstance(schema, dict) and schema.get("type") == "record":
        yield schema
        for field in schema["fields"]:
            yield from walk_records(field["type"])


@pytest.mark.parametrize("subject", SUBJECTS)
def test_contract_parses_with_fastavro_and_avro(subject: str) -> None:
    text = schema_text(subject)
    fastavro.parse_schema(json.loads(text))
    avro.schema.parse(text)


def test_every_avsc_file_is_a_known_contract() -> None:
    on_disk = sorted(r.name for r in files("dharma.schemas").iterdir() if r.name.endswith(".avsc"))
    assert on_disk == sorted(f"{s}.avsc" for s in SUBJECTS)


@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_field_and_record_is_documented(subject: str) -> None:
    schema = load_schema(subject)
    if isinstance(schema, dict) and schema["type"] not in ("record",):
        assert schema.get("doc", "").strip(), f"{subject}: top-level schema has no doc"
    for where, field in walk_fields(schema):
        assert isinstance(field.get("doc"), str) and field["doc"].strip(), f"{subject}: {where}"
    for record in walk_records(schema):
        assert record.get("doc", "").strip(), f"{subject}: record {record['name']} has no doc"


def test_walk_reaches_nested_records_and_union_branches() -> None:
    seen = {w for w, _ in walk_fields(load_schema("audit.logs-value"))}
    assert "AccessEvent.device/DevicePosture.patch_level" in seen
    assert "AccessEvent.location/GeoLocation.country" in seen
    infra = {w for w, _ in walk_fields(load_schema("infrastructure.events-value"))}
    assert "InfrastructureEvent.attributes/ChaosExperimentAttributes.blast_radius" in infra


def test_metrics_raw_contract() -> None:
    f = fields_of(load_schema("metrics.raw-value"))
    assert f["source"]["type"] == "string"
    assert f["metric"]["type"] == "string"
    assert f["value"]["type"] == "double"
    assert f["ts"]["type"] == TIMESTAMP
    assert f["labels"]["type"] == {"type": "map", "values": "string"}
    assert f["labels"]["default"] == {}
    assert f["unit"]["type"] == ["null", "string"]
    assert f["unit"]["default"] is None


def test_predictions_anomaly_branch() -> None:
    schema = load_schema("ml.predictions-value")
    assert isinstance(schema, list)
    f = fields_of(schema, "AnomalyPrediction")
    assert named(schema[0])["namespace"] == "dharma.predictions"
    assert f["source"]["type"] == "string"
    assert f["metric"]["type"] == "string"
    assert f["ts"]["type"] == TIMESTAMP
    assert f["model"]["type"] == "string"
    assert f["anomaly_score"]["type"] == "double"
    assert f["is_anomaly"]["type"] == "boolean"


def test_alerts_contract() -> None:
    f = fields_of(load_schema("alerts.notifications-value"))
    for name in ("alert_id", "fingerprint", "kind", "source", "summary"):
        assert f[name]["type"] == "string", name
    status = named(f["status"]["type"])
    assert status["type"] == "enum"
    assert status["symbols"] == ["firing", "resolved"]
    severity = named(f["severity"]["type"])
    assert severity["type"] == "enum"
    assert {"info", "warning", "critical"} <= set(severity["symbols"])
    assert f["ts"]["type"] == TIMESTAMP
    assert f["labels"]["type"] == {"type": "map", "values": "string"}


def test_infrastructure_events_contract() -> None:
    f = fields_of(load_schema("infrastructure.events-value"))
    assert f["event_id"]["type"] == "string"
    assert f["ts"]["type"] == TIMESTAMP
    assert f["resource_id"]["type"] == "string"
    kinds = named(f["type"]["type"])
    assert kinds["type"] == "enum"
    assert kinds["symbols"] == [
        "asset", "dependency", "deployment", "health_check", "incident", "remediation",
        "chaos_experiment",
    ]
    branches = f["attributes"]["type"]
    assert isinstance(branches, list) and all(named(b)["type"] == "record" for b in branches)
    # one typed attributes record per event kind
    expected = {"".join(p.title() for p in k.split("_")) + "Attributes" for k in kinds["symbols"]}
    assert {b["name"] for b in branches} == expected


def test_audit_logs_contract() -> None:
    f = fields_of(load_schema("audit.logs-value"))
    for name in ("event_id", "user_id", "resource", "action", "source_ip"):
        assert f[name]["type"] == "string", name
    assert f["ts"]["type"] == TIMESTAMP
    assert f["last_auth_ts"]["type"] == TIMESTAMP
    assert f["roles"]["type"] == {"type": "array", "items": "string"}
    assert f["mfa_enabled"]["type"] == "boolean"
    device = fields_of(named(f["device"]["type"]))
    assert device["os"]["type"] == "string"
    for flag in ("encrypted", "firewall", "antivirus"):
        assert device[flag]["type"] == "boolean", flag
    assert device["compliance_score"]["type"] == "double"
    patch = named(device["patch_level"]["type"])
    assert patch["type"] == "enum" and "latest" in patch["symbols"]
    location = f["location"]["type"]
    assert location[0] == "null" and named(location[1])["type"] == "record"
    assert f["location"]["default"] is None


def test_billing_focus_contract_follows_focus() -> None:
    f = fields_of(load_schema("billing.focus-value"))
    money = {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 18}
    for name in ("BilledCost", "EffectiveCost", "ListCost"):
        assert f[name]["type"] == money, name
    assert f["PricingQuantity"]["type"] == ["null", money]
    for name in ("ChargePeriodStart", "ChargePeriodEnd"):
        assert f[name]["type"] == TIMESTAMP, name
    assert named(f["ChargeCategory"]["type"])["symbols"] == [
        "Usage", "Purchase", "Tax", "Credit", "Adjustment"]
    for name in ("x_line_id", "BillingAccountId", "BillingCurrency", "ServiceName",
                 "ProviderName"):
        assert f[name]["type"] == "string", name
    for name in ("ResourceId", "ResourceName", "ResourceType", "RegionId", "PricingUnit",
                 "ChargeDescription"):
        assert f[name]["type"] == ["null", "string"] and f[name]["default"] is None, name
    assert f["Tags"]["type"] == {"type": "map", "values": "string"}
    assert load_schema("billing.focus-key")["type"] == "string"


def test_dead_letter_contract_keeps_the_original_bytes() -> None:
    f = fields_of(load_schema(DEAD_LETTER))
    assert f["original_key"]["type"] == ["null", "bytes"]
    assert f["original_value"]["type"] == ["null", "bytes"]
    assert {"topic", "partition", "offset", "reason", "error_kind", "ts"} <= set(f)


def _avro_to_python(type_: Any) -> Any:
    simple = {"string": str, "double": float, "long": int, "int": int, "boolean": bool}
    if isinstance(type_, str):
        return simple[type_]
    if isinstance(type_, list):
        non_null = [t for t in type_ if t != "null"]
        (only,) = non_null
        return _avro_to_python(only) | None if "null" in type_ else _avro_to_python(only)
    if type_["type"] == "map":
        return dict[str, _avro_to_python(type_["values"])]  # type: ignore[misc]  # runtime type
    return simple[type_["type"]]


def _plain(t: Any) -> Any:
    """``t`` without ``Annotated`` constraints (the contract knows the types only)."""
    if typing.get_origin(t) is typing.Annotated:
        return _plain(typing.get_args(t)[0])
    if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union:
        return functools.reduce(operator.or_, map(_plain, typing.get_args(t)))
    if isinstance(t, types.GenericAlias):
        return types.GenericAlias(typing.get_origin(t), tuple(map(_plain, typing.get_args(t))))
    return t


def _same_type(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, types.UnionType) or isinstance(b, types.UnionType):
        return set(typing.get_args(a)) == set(typing.get_args(b))
    return bool(a == b)


def test_metric_sample_model_matches_the_contract() -> None:
    contract = fields_of(load_schema("metrics.raw-value"))
    model = MetricSample.model_fields
    assert list(model) == list(contract)
    for name, field in contract.items():
        expected = _avro_to_python(field["type"])
        assert _same_type(model[name].annotation, expected), (name, model[name].annotation)
        # optional in the contract (has a default) <=> optional in the model
        assert model[name].is_required() == ("default" not in field), name
        if "default" in field:
            assert model[name].get_default(call_default_factory=True) == field["default"], name


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.name)
def test_every_topic_has_key_and_value_contracts(topic: Any) -> None:
    for subject in (topic.key_subject, topic.value_subject):
        assert contract_file(subject) == f"{subject}.avsc"
        assert schema_text(subject)


@pytest.mark.parametrize("topic", DEAD_LETTER_TOPICS, ids=lambda t: t.name)
def test_dead_letter_topics_map_to_the_dead_letter_contract(topic: Any) -> None:
    assert contract_file(topic.value_subject) == f"{DEAD_LETTER}.avsc"
    assert schema_text(topic.value_subject) == schema_text(DEAD_LETTER)


def test_unknown_subject_has_no_contract() -> None:
    with pytest.raises(KeyError, match="no contract"):
        schema_text("nonexistent.topic-value")


def test_contract_subjects_are_exactly_the_topics_subjects() -> None:
    expected = {s for t in TOPICS for s in (t.key_subject, t.value_subject)}
    assert set(contract_subjects()) == expected
    assert {t.name for t in all_topics()} >= {t.name for t in DEAD_LETTER_TOPICS}
