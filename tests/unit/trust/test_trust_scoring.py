"""Trust factors, bands, configuration of networks and business hours."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dharma.agents.trust import (
    AccessEvent,
    DevicePosture,
    TrustConfig,
    TrustLevel,
    parse_access_event,
    trust_level,
)
from dharma.agents.trust.scoring import (
    MAX_SCORE,
    MIN_SCORE,
    TrustScores,
    context_trust,
    device_trust,
    round2,
    score_event,
    user_trust,
)


def _device(**kw: object) -> DevicePosture:
    base: dict[str, object] = {
        "device_id": "d1",
        "os": "x",
        "encrypted": False,
        "firewall": False,
        "antivirus": False,
        "compliance_score": 0.0,
        "patch_level": "unknown",
    }
    base.update(kw)
    return DevicePosture.model_validate(base)


@pytest.mark.parametrize(
    ("patch", "bonus"), [("latest", 10), ("recent", 5), ("outdated", 0), ("unknown", 0)]
)
def test_patch_bonus(patch: str, bonus: int) -> None:
    assert device_trust(_device(patch_level=patch), TrustConfig()) == bonus


def test_device_factor_parts_and_cap() -> None:
    cfg = TrustConfig()
    assert device_trust(_device(compliance_score=50.0), cfg) == 20
    assert device_trust(_device(encrypted=True), cfg) == 20
    assert device_trust(_device(firewall=True, antivirus=True), cfg) == 30
    full = _device(
        compliance_score=100.0, encrypted=True, firewall=True, antivirus=True, patch_level="latest"
    )
    assert device_trust(full, cfg) == 100


def test_user_factor() -> None:
    assert user_trust(False, False, 0) == 50
    assert user_trust(True, False, 0) == 80
    assert user_trust(False, True, 50) == 80
    assert user_trust(True, True, 85) == 100  # capped
    assert user_trust(False, False, 33.3) == Decimal("56.66")


def test_context_factor() -> None:
    assert context_trust(True, True, True) == 75
    assert context_trust(True, True, False) == 85
    assert context_trust(False, False, True) == 40
    assert context_trust(False, False, False) == 50


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (100, TrustLevel.FULL),
        (90, TrustLevel.FULL),
        (89.99, TrustLevel.HIGH),
        (75, TrustLevel.HIGH),
        (74.99, TrustLevel.MEDIUM),
        (50, TrustLevel.MEDIUM),
        (49.99, TrustLevel.LOW),
        (40, TrustLevel.LOW),
        (39.99, TrustLevel.NONE),
        (30, TrustLevel.NONE),
        (0, TrustLevel.NONE),
    ],
)
def test_bands(score: float, level: TrustLevel) -> None:
    assert trust_level(score) is level


def test_round_half_up_without_float_artifacts() -> None:
    assert round2(Decimal("93.045")) == Decimal("93.05")
    assert float(round2(Decimal("98.0") * Decimal("0.35"))) == 34.3


def test_business_hours_are_timezone_aware() -> None:
    monday_1430_utc = datetime(2025, 12, 8, 14, 30, tzinfo=UTC)
    assert TrustConfig().is_business_hours(monday_1430_utc)
    assert not TrustConfig(timezone="Asia/Tokyo").is_business_hours(monday_1430_utc)  # 23:30
    assert TrustConfig(timezone="America/New_York").is_business_hours(monday_1430_utc)  # 09:30
    saturday = datetime(2025, 12, 13, 14, 30, tzinfo=UTC)
    assert not TrustConfig().is_business_hours(saturday)


def test_internal_networks_are_configuration() -> None:
    import ipaddress

    ip = ipaddress.ip_address("10.0.1.50")
    assert TrustConfig().is_internal(ip)
    assert not TrustConfig(internal_networks=("192.168.0.0/16",)).is_internal(ip)
    assert TrustConfig().is_internal(ipaddress.ip_address("fd00::1"))
    assert not TrustConfig().is_internal(ipaddress.ip_address("2001:db8::1"))


def test_bad_config_rejected() -> None:
    with pytest.raises(ValueError):
        TrustConfig(internal_networks=("10.0.0.0/33",))
    with pytest.raises(ValueError):
        TrustConfig(timezone="Mars/Olympus")


def test_production_marker() -> None:
    cfg = TrustConfig()
    assert cfg.is_production("database/production/customer_db")
    assert not cfg.is_production("database/productionish/x")


_ZONED = [TrustConfig(), TrustConfig(timezone="Europe/Paris"),
          TrustConfig(timezone="Australia/Lord_Howe", business_start=time(8, 30)),
          TrustConfig(timezone="America/New_York", business_start=time(9, 0, 30))]


@settings(max_examples=300, deadline=None)
@given(ts_ms=st.integers(946_684_800_000, 4_102_444_800_000), which=st.integers(0, 3))
def test_memoised_business_hours_equal_the_direct_answer(ts_ms: int, which: int) -> None:
    config = _ZONED[which]
    when = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    assert config.business_hours_at(ts_ms) == config.is_business_hours(when)
    assert config.business_hours_at(ts_ms) == config.is_business_hours(when)  # cached


def test_production_memo() -> None:
    config = TrustConfig()
    for _ in range(2):
        assert config.is_production("database/production/x")
        assert config.is_production("db/prod")
        assert not config.is_production("database/staging/productionish")


def test_scores_carry_their_floats() -> None:
    scores = TrustScores(Decimal("98"), Decimal("100"), Decimal("75"), Decimal("93.05"),
                         trust_level(93.05), True, True, True, True, True, 95.0)
    assert scores.floats == (93.05, 98.0, 100.0, 75.0)


_WORKDAY_MS = int(datetime(2025, 12, 8, 14, 30, tzinfo=UTC).timestamp()) * 1000
_SUNDAY_NIGHT_MS = int(datetime(2025, 12, 7, 3, 0, tzinfo=UTC).timestamp()) * 1000
facts = st.fixed_dictionaries({
    "compliance": st.floats(0, 100, allow_nan=False), "encrypted": st.booleans(),
    "firewall": st.booleans(), "antivirus": st.booleans(),
    "patch": st.sampled_from(["latest", "recent", "outdated", "unknown"]),
    "mfa": st.booleans(), "recent": st.booleans(), "hours": st.booleans(),
    "internal": st.booleans(), "production": st.booleans(),
    "history": st.floats(0, 100, allow_nan=False)})


def _score(f: dict[str, Any]) -> TrustScores:
    ts = _WORKDAY_MS if f["hours"] else _SUNDAY_NIGHT_MS
    event = parse_access_event({
        "event_id": "e", "ts": ts, "user_id": "u", "roles": ["admin"],
        "resource": "database/production/x" if f["production"] else "database/staging/x",
        "action": "read", "device": {
            "device_id": "d", "os": "x", "encrypted": f["encrypted"], "firewall": f["firewall"],
            "antivirus": f["antivirus"], "compliance_score": f["compliance"],
            "patch_level": f["patch"]},
        "mfa_enabled": f["mfa"], "last_auth_ts": ts - (60_000 if f["recent"] else 3_600_000),
        "source_ip": "10.0.1.50" if f["internal"] else "203.0.113.7"})
    assert isinstance(event, AccessEvent)
    return score_event(event, f["history"], TrustConfig())


_WORST = {"compliance": 0.0, "encrypted": False, "firewall": False, "antivirus": False,
          "patch": "unknown", "mfa": False, "recent": False, "hours": False, "internal": False,
          "production": True, "history": 0.0}
_BEST = {**_WORST, "compliance": 100.0, "encrypted": True, "firewall": True, "antivirus": True,
         "patch": "latest", "mfa": True, "recent": True, "hours": True, "internal": True,
         "production": False, "history": 100.0}


@settings(max_examples=400, deadline=None)
@given(facts)
def test_scores_that_can_occur_lie_between_the_documented_bounds(f: dict[str, Any]) -> None:
    assert MIN_SCORE <= _score(f).overall <= MAX_SCORE


def test_both_bounds_and_every_band_are_reached() -> None:
    worst, best = _score(_WORST), _score(_BEST)
    assert (worst.overall, worst.level) == (MIN_SCORE, TrustLevel.NONE)
    assert (best.overall, best.level) == (MAX_SCORE, TrustLevel.FULL)
    reached = {worst.level,
               _score({**_WORST, "history": 50.0}).level,  # 34: a new user on a bare device
               _score({**_WORST, "history": 50.0, "encrypted": True}).level,  # 41
               _score({**_BEST, "mfa": False, "recent": False, "history": 0.0,
                       "compliance": 0.0, "hours": False}).level,  # 57.25
               _score({**_BEST, "hours": False, "production": True}).level,  # 88.75
               best.level}
    assert reached == set(TrustLevel)
