"""audit.logs: the seed persona, risky fraction, risk kinds, office hours."""

from __future__ import annotations

import statistics
from typing import Any

from synthetic_support import DAY_TICKS, START_MS, make_source

from dharma.synthetic import AUDIT_TOPIC, AccessConfig

TICKS = 3 * DAY_TICKS


def _run(**kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, tuple[str, ...]]]:
    src = make_source(21, scripted=(), **kwargs)
    values = [e.value for b in src.ticks(TICKS) for e in b if e.topic == AUDIT_TOPIC]
    return values, {t.event_id: t.risks for t in src.access_truth()}


def test_seed_persona_opens_the_run() -> None:
    values, _ = _run()
    first = values[0]
    assert (first["user_id"], first["resource"], first["action"]) == (
        "admin_user_001",
        "database/production/customer_db",
        "read",
    )
    assert first["device"] == {
        "device_id": "device_12345",
        "os": "Ubuntu 22.04",
        "encrypted": True,
        "firewall": True,
        "antivirus": True,
        "compliance_score": 95.0,
        "patch_level": "latest",
    }
    assert first["roles"] == ["admin", "developer"] and first["mfa_enabled"]
    assert first["source_ip"] == "10.0.1.50" and first["location"]["name"] == "Office"
    assert first["ts"] - first["last_auth_ts"] == 180_000


def test_risky_fraction_in_range() -> None:
    values, truth = _run()
    requests = [v for v in values if v["event_type"] == "access_request"]
    assert len(requests) > 300
    risky = [v for v in requests if set(truth[v["event_id"]]) - {"night_time"}]
    assert 0.06 <= len(risky) / len(requests) <= 0.25
    kinds = {k for v in risky for k in truth[v["event_id"]]}
    assert {
        "unencrypted_device",
        "low_compliance",
        "no_mfa",
        "stale_auth",
        "external_ip",
        "impossible_travel",
        "forbidden_probe",
    } <= kinds


def test_risks_match_fields() -> None:
    values, truth = _run()
    for v in values:
        risks = truth[v["event_id"]]
        assert ("external_ip" in risks) == (not v["source_ip"].startswith("10."))
        assert ("unencrypted_device" in risks) == (not v["device"]["encrypted"])
        assert ("no_mfa" in risks) == (not v["mfa_enabled"])
        if "forbidden_probe" in risks:
            assert "admin" not in v["roles"]
            assert v["resource"].startswith(("secrets/", "database/production/"))
        if "impossible_travel" in risks:
            assert v["location"]["name"] not in ("Office", "Home")


def test_benign_fraction_with_no_risk() -> None:
    values, truth = _run(access=AccessConfig(risky_fraction=0.0, posture_updates_per_tick=0.0))
    requests = [v for v in values if v["event_type"] == "access_request"]
    assert all(set(truth[v["event_id"]]) <= {"night_time"} for v in requests)


def test_office_hours_busier_than_night() -> None:
    values, _ = _run()
    day_ms = DAY_TICKS * 10_000
    hours = [
        ((v["ts"] - 0) % day_ms) / day_ms * 24
        for v in values
        if v["event_type"] == "access_request" and v["ts"] > START_MS
    ]
    office = sum(9 <= h < 18 for h in hours) / 9
    night = sum(h < 6 or h >= 22 for h in hours) / 8
    assert office > 5 * night


def test_posture_updates_and_risk_signals_present() -> None:
    values, _ = _run()
    kinds = [v["event_type"] for v in values]
    assert kinds.count("posture_update") >= 4 and kinds.count("risk_signal") >= 1
    signals = [v for v in values if v["event_type"] == "risk_signal"]
    assert all(v["risk_reason"] for v in signals)
    assert statistics.mean(v["event_type"] == "access_request" for v in values) > 0.8
