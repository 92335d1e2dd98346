"""Strict validation of access events: hostile input becomes a Rejection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from dharma.agents.trust import AccessEvent, Rejection, parse_access_event

Seed = Callable[..., dict[str, Any]]


def test_valid_event_round_trips(seed: Seed) -> None:
    event = parse_access_event(seed())
    assert isinstance(event, AccessEvent)
    assert event.to_record() == seed()


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
    assert isinstance(parse_access_event(seed(resource=resource)), Rejection)


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
    assert isinstance(parse_access_event(seed(**overrides)), Rejection)


@pytest.mark.parametrize("raw", [None, [], "event", 42, {"event_id": "e"}])
def test_non_records_rejected(raw: Any) -> None:
    rejection = parse_access_event(raw)
    assert isinstance(rejection, Rejection)
    assert rejection.reason


def test_missing_fields_named(seed: Seed) -> None:
    raw = seed()
    del raw["device"]["compliance_score"]
    rejection = parse_access_event(raw)
    assert isinstance(rejection, Rejection)
    assert any("compliance_score" in e for e in rejection.errors)


def test_posture_update_needs_no_resource(seed: Seed) -> None:
    event = parse_access_event(seed(event_type="posture_update", resource="", action=""))
    assert isinstance(event, AccessEvent)


def test_ipv6_accepted(seed: Seed) -> None:
    assert isinstance(parse_access_event(seed(source_ip="2001:db8::1")), AccessEvent)
