"""Strict validation of access events: hostile input raises InvalidAccessEvent."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import fastavro
import pytest

from dharma.agents.trust import AccessEvent, InvalidAccessEvent, parse_access_event
from dharma.agents.trust.models import parse_access_record, to_epoch_ms
from dharma.schemas import load_schema
from dharma.streams.codec import _parse
from dharma.streams.topics import AUDIT_LOGS

Seed = Callable[..., dict[str, Any]]


def test_valid_event_round_trips(seed: Seed) -> None:
    event = parse_access_event(seed())
    assert isinstance(event, AccessEvent)
    assert event.to_record() == seed()
    assert event.record == seed()


def _through_avro(raw: dict[str, Any]) -> dict[str, Any]:
    schema = _parse(load_schema(AUDIT_LOGS.value_subject))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, raw)
    buf.seek(0)
    return cast(dict[str, Any], fastavro.schemaless_reader(buf, schema, None))  # a record


@pytest.mark.parametrize("overrides", [
    {}, {"source_ip": "2001:db8::1"}, {"location": None}, {"risk_reason": "x"},
    {"location": {"name": "Paris", "country": "FR", "lat": 48.85, "lon": 2.35}},
    {"event_type": "posture_update", "device": {"patch_level": "outdated"}},
])
def test_decoded_record_kept_as_the_events_record(seed: Seed, overrides: dict[str, Any]) -> None:
    raw = _through_avro(seed(**overrides))
    event = parse_access_record(raw)
    assert isinstance(event, AccessEvent)
    assert event.record is raw
    assert raw == event.to_record()
    assert event.ts_ms == to_epoch_ms(event.ts) == raw["ts"]


@pytest.mark.parametrize("raw", [
    {"source_ip": "2001:DB8:0::1"},  # valid, not canonical: the record is rebuilt
])
def test_non_canonical_record_rebuilt(seed: Seed, raw: dict[str, Any]) -> None:
    decoded = _through_avro(seed(**raw))
    event = parse_access_record(decoded)
    assert isinstance(event, AccessEvent)
    assert event.record is not decoded
    assert event.record == event.to_record()


def test_incomplete_record_rebuilt(seed: Seed) -> None:
    raw = seed()
    del raw["location"], raw["device"]["patch_level"]
    event = parse_access_record(raw)
    assert isinstance(event, AccessEvent)
    assert event.record == event.to_record() != raw


@pytest.mark.parametrize(
    "resource",
    [
        "database/production/../secrets",
        "../etc/passwd",
        "database/production/*",
        "database/production/cust\x00omer",
        "database/'; DROP TABLE users; --",
        'database/"x"',
        "database//x",
        "/database/x",
        "database/x/",
        "database\\x",
        "database/ x",
        "database/./x",
        "a" * 2000,
        "/".join(["a"] * 40),
        "database/production/customer_db\n",
    ],
)
def test_hostile_resources_rejected(seed: Seed, resource: str) -> None:
    with pytest.raises(InvalidAccessEvent):
        parse_access_event(seed(resource=resource))


@pytest.mark.parametrize(
    "overrides",
    [
        {"device": {"compliance_score": 101.0}},
        {"device": {"compliance_score": -1.0}},
        {"device": {"compliance_score": float("nan")}},
        {"device": {"compliance_score": "95"}},
        {"device": {"encrypted": "yes"}},
        {"device": {"encrypted": 1}},
        {"device": {"patch_level": "bleeding"}},
        {"mfa_enabled": "true"},
        {"mfa_enabled": 1},
        {"ts": "2025-12-08T14:30:15Z"},
        {"ts": True},
        {"ts": 10**16},
        {"ts": datetime(2025, 12, 8, 14, 30)},  # naive
        {"source_ip": "10.0.1.500"},
        {"source_ip": 167772466},
        {"roles": "admin"},
        {"roles": ["admin; rm -rf"]},
        {"roles": ["r"] * 65},
        {"user_id": ""},
        {"user_id": "x" * 200},
        {"event_id": None},
        {"action": "READ"},
        {"action": ""},
        {"event_type": "grant_everything"},
        {"unexpected": 1},
        {"location": {"name": "x", "lat": 91.0, "lon": 0.0}},
    ],
)
def test_malformed_rejected(seed: Seed, overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidAccessEvent):
        parse_access_event(seed(**overrides))


@pytest.mark.parametrize("raw", [None, [], "event", 42, {"event_id": "e"}])
def test_non_records_rejected(raw: Any) -> None:
    with pytest.raises(InvalidAccessEvent) as rejected:
        parse_access_event(raw)
    assert rejected.value.summary and rejected.value.error_kind == "contract_violation"


def test_missing_fields_named(seed: Seed) -> None:
    raw = seed()
    del raw["device"]["compliance_score"]
    with pytest.raises(InvalidAccessEvent) as rejected:
        parse_access_event(raw)
    assert any("compliance_score" in e for e in rejected.value.errors)


def test_posture_update_needs_no_resource(seed: Seed) -> None:
    event = parse_access_event(seed(event_type="posture_update", resource="", action=""))
    assert isinstance(event, AccessEvent)


def test_ipv6_accepted(seed: Seed) -> None:
    assert isinstance(parse_access_event(seed(source_ip="2001:db8::1")), AccessEvent)
