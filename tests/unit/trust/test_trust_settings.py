"""The worker's trust configuration comes from ``DHARMA_TRUST_*``."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, time

import pytest
from pydantic import ValidationError

from dharma.agents.trust import TrustConfig
from dharma.streams.settings import Settings


def test_timezone_networks_and_time_limits_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHARMA_TRUST_TIMEZONE", "Asia/Tokyo")
    monkeypatch.setenv("DHARMA_TRUST_INTERNAL_NETWORKS", "203.0.113.0/24, 2001:db8::/32")
    monkeypatch.setenv("DHARMA_TRUST_CLOCK_SKEW_S", "5")
    monkeypatch.setenv("DHARMA_TRUST_MAX_REQUEST_AGE_S", "120")
    monkeypatch.setenv("DHARMA_TRUST_SESSION_TTL_S", "600")
    config = TrustConfig.from_settings(Settings().trust)
    assert config.internal_networks == ("203.0.113.0/24", "2001:db8::/32")
    assert config.is_internal(ipaddress.ip_address("203.0.113.9"))
    assert not config.is_internal(ipaddress.ip_address("10.0.1.50"))
    monday_1430_utc = datetime(2025, 12, 8, 14, 30, tzinfo=UTC)  # 23:30 in Tokyo
    assert not config.is_business_hours(monday_1430_utc)
    assert (config.clock_skew_seconds, config.max_request_age_seconds,
            config.allow_ttl_seconds, config.replay_guard_s) == (5, 120, 600, 605)


def test_defaults_are_the_documented_ones() -> None:
    config = TrustConfig.from_settings(Settings().trust)
    assert config == TrustConfig()
    assert (config.timezone, config.clock_skew_seconds, config.max_request_age_seconds) == (
        "UTC", 30, 900)


def test_business_hours_and_the_compromise_hold_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHARMA_TRUST_BUSINESS_HOURS", "07:30-16:00")
    monkeypatch.setenv("DHARMA_TRUST_BUSINESS_DAYS", "6,7")
    monkeypatch.setenv("DHARMA_TRUST_COMPROMISE_HOLD_S", "3600")
    config = TrustConfig.from_settings(Settings().trust)
    assert (config.business_start, config.business_end) == (time(7, 30), time(16, 0))
    assert config.business_days == frozenset({6, 7})
    assert config.compromise_hold_seconds == 3600
    assert config.is_business_hours(datetime(2025, 12, 7, 15, 59, tzinfo=UTC))  # a Sunday
    assert not config.is_business_hours(datetime(2025, 12, 8, 10, 0, tzinfo=UTC))  # Monday


@pytest.mark.parametrize(("name", "value"), [
    ("DHARMA_TRUST_TIMEZONE", "Mars/Olympus"),
    ("DHARMA_TRUST_INTERNAL_NETWORKS", "10.0.0.0/33"),
    ("DHARMA_TRUST_REPLAY_GUARD_S", "60"),
    ("DHARMA_TRUST_BUSINESS_HOURS", "18:00-09:00"),
    ("DHARMA_TRUST_BUSINESS_HOURS", "9-18"),
    ("DHARMA_TRUST_BUSINESS_DAYS", "0,8"),
    ("DHARMA_TRUST_COMPROMISE_HOLD_S", "-1"),
])
def test_a_bad_setting_stops_the_worker_from_starting(monkeypatch: pytest.MonkeyPatch,
                                                       name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        TrustConfig.from_settings(Settings().trust)
