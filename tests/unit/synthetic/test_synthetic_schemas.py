"""Every emission validates against its topic's Avro contract and round-trips."""

from __future__ import annotations

import io
import math
from datetime import datetime
from typing import Any

import fastavro
from fastavro.validation import validate
from synthetic_support import make_source

from dharma.synthetic import INFRA_TOPIC, METRICS_TOPIC, bad_events


def _epoch_ms(value: Any) -> Any:
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _epoch_ms(v) for k, v in value.items()}
    return value


def _round_trip(schema: Any, value: dict[str, Any]) -> Any:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, value)
    buf.seek(0)
    return _epoch_ms(fastavro.schemaless_reader(buf, schema, schema))


def _without_defaults(decoded: Any, sent: Any) -> Any:
    """``decoded`` without the fields ``sent`` left to the contract's defaults."""
    if isinstance(decoded, dict) and isinstance(sent, dict):
        return {k: _without_defaults(v, sent[k]) for k, v in decoded.items() if k in sent}
    return decoded


def test_every_emission_validates_and_round_trips(schemas: dict[str, Any]) -> None:
    seen: set[tuple[str, str]] = set()
    src = make_source(3, random_incidents=True, bad_fraction=0.0)
    for batch in src.ticks(400):
        for e in batch:
            assert validate(e.value, schemas[e.topic], raise_errors=True)
            decoded = _round_trip(schemas[e.topic], e.value)
            assert _without_defaults(decoded, e.value) == e.value
            key_field = {"metrics.raw": "source", "infrastructure.events": "resource_id"}
            assert e.key == e.value[key_field.get(e.topic, "user_id")]
            seen.add((e.topic, e.value.get("type") or e.value.get("event_type") or ""))
    kinds = {k for _, k in seen}
    assert {
        "asset",
        "dependency",
        "deployment",
        "health_check",
        "incident",
        "remediation",
        "chaos_experiment",
        "access_request",
        "posture_update",
        "risk_signal",
    } <= kinds


def test_attributes_match_exactly_one_union_branch(schemas: dict[str, Any]) -> None:
    union = next(f for f in schemas[INFRA_TOPIC]["fields"] if f["name"] == "attributes")["type"]
    expected = {
        "asset": "AssetAttributes",
        "dependency": "DependencyAttributes",
        "deployment": "DeploymentAttributes",
        "health_check": "HealthCheckAttributes",
        "incident": "IncidentAttributes",
        "remediation": "RemediationAttributes",
        "chaos_experiment": "ChaosExperimentAttributes",
    }
    for e in make_source(4).events(limit=30_000):
        if e.topic != INFRA_TOPIC:
            continue
        matches = [
            b["name"] for b in union if validate(e.value["attributes"], b, raise_errors=False)
        ]
        assert matches == [f"dharma.infra.{expected[e.value['type']]}"]


def test_bad_events_are_schema_valid_but_semantically_bad(schemas: dict[str, Any]) -> None:
    bad = bad_events(1, count=12)
    assert {e.bad_reason for e in bad} == {
        "nan",
        "inf",
        "neg_inf",
        "future_ts",
        "epoch_ts",
        "empty_source",
    }
    for e in bad:
        assert validate(e.value, schemas[METRICS_TOPIC], raise_errors=True)
        v = e.value
        assert not math.isfinite(v["value"]) or v["ts"] <= 0 or v["ts"] > 4e12 or v["source"] == ""
