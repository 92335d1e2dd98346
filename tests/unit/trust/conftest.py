"""Shared fixtures of the trust tests: the seed's request and engines."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dharma.agents.trust import TrustConfig, TrustEngine, default_engine

SEED_TS = datetime(2025, 12, 8, 14, 30, 15, tzinfo=UTC)  # a Monday
MS = 1000

_SEED: dict[str, Any] = {
    "event_id": "evt-seed-001",
    "ts": int(SEED_TS.timestamp()) * MS,
    "event_type": "access_request",
    "user_id": "admin_user_001",
    "roles": ["admin", "developer"],
    "resource": "database/production/customer_db",
    "action": "read",
    "device": {
        "device_id": "device_12345",
        "os": "Ubuntu 22.04",
        "encrypted": True,
        "firewall": True,
        "antivirus": True,
        "compliance_score": 95.0,
        "patch_level": "latest",
    },
    "mfa_enabled": True,
    "last_auth_ts": int((SEED_TS - timedelta(minutes=3)).timestamp()) * MS,
    "source_ip": "10.0.1.50",
    "location": {"name": "Office", "country": None, "lat": None, "lon": None},
    "risk_reason": None,
}


def make_seed(**overrides: Any) -> dict[str, Any]:
    """The seed's access request as a decoded Avro record, with overrides."""
    raw = copy.deepcopy(_SEED)
    device = overrides.pop("device", None)
    raw.update(overrides)
    if device:
        raw["device"].update(device)
    return raw


@pytest.fixture(scope="session")
def seed() -> Callable[..., dict[str, Any]]:
    """Factory of the seed's request record."""
    return make_seed


@pytest.fixture(scope="session")
def engine() -> TrustEngine:
    """Engine over the packaged default policies, UTC business hours."""
    return default_engine(TrustConfig())
