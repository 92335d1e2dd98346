"""Decision semantics: ALLOW, CHALLENGE, DENY, forbid, fail closed, the Avro record."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.trust import (
    PolicySet,
    TrustConfig,
    TrustEngine,
    UserBehaviour,
    Verdict,
    default_engine,
)
from dharma.agents.trust.engine import _NAMESPACE, deterministic_id

Seed = Callable[..., dict[str, Any]]
ENGINE = default_engine(TrustConfig())
SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "ml.predictions-value.avsc"
MIN = 60_000


def _decide(engine: TrustEngine, raw: dict[str, Any], score: float = 85) -> Any:
    return engine.decide(raw, UserBehaviour(score=score))


def test_missing_mfa_challenges(engine: TrustEngine, seed: Seed) -> None:
    d = _decide(engine, seed(mfa_enabled=False))
    assert d.decision is Verdict.CHALLENGE
    assert d.policy_id == "pol_001"
    assert "condition: MFA required" in d.reasons
    assert d.expires_in == 0 and d.session_id is None


def test_trust_short_only_by_step_up_challenges(engine: TrustEngine, seed: Seed) -> None:
    # stale auth, no MFA, outside: trust below HIGH, but fresh MFA would make it
    raw = seed(mfa_enabled=False, source_ip="203.0.113.9", last_auth_ts=seed()["ts"] - 60 * MIN)
    d = _decide(engine, raw, score=20)
    assert d.scores.level.name in {"MEDIUM", "LOW"}
    assert d.decision is Verdict.CHALLENGE


def test_role_missing_denies_with_reason(engine: TrustEngine, seed: Seed) -> None:
    d = _decide(engine, seed(roles=["developer"]))
    assert d.decision is Verdict.DENY
    assert d.policy_id == "pol_001"
    assert any(r.startswith("role:") for r in d.reasons)


def test_no_policy_denies_with_null_policy(engine: TrustEngine, seed: Seed) -> None:
    d = _decide(engine, seed(resource="hr/payroll/2025"))
    assert d.decision is Verdict.DENY
    assert d.policy_id is None
    assert "no matching policy" in d.reasons


def test_forbid_overrides_permit(engine: TrustEngine, seed: Seed) -> None:
    d = _decide(engine, seed(action="write", source_ip="203.0.113.9"))
    assert (d.decision, d.policy_id) == (Verdict.DENY, "pol_901")


def test_non_access_events_denied(engine: TrustEngine, seed: Seed) -> None:
    d = _decide(engine, seed(event_type="posture_update"))
    assert d.decision is Verdict.DENY


def test_rejection_denies_with_reason(engine: TrustEngine, seed: Seed) -> None:
    d = engine.decide(seed(resource="database/production/../x"))
    assert d.decision is Verdict.DENY
    assert d.reasons[0] == "invalid access event"
    assert d.event_id == "evt-seed-001"
    assert d.to_record()["resource"] == "database/production/../x"


def test_exception_fails_closed(
    engine: TrustEngine, seed: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr("dharma.agents.trust.engine.score_event", boom)
    d = _decide(engine, seed())
    assert d.decision is Verdict.DENY
    assert d.reasons == ("internal error: RuntimeError",)


def test_business_hours_and_networks_conditions(seed: Seed) -> None:
    ps = PolicySet.from_documents(
        [
            {
                "policies": [
                    {
                        "id": "p",
                        "name": "p",
                        "resource": "x/*",
                        "actions": ["read"],
                        "roles_any": ["admin"],
                        "min_trust_level": "LOW",
                        "conditions": {
                            "business_hours_only": True,
                            "allowed_networks": ["10.0.0.0/8"],
                        },
                    }
                ]
            }
        ]
    )
    eng = TrustEngine(ps, TrustConfig())
    assert _decide(eng, seed(resource="x/y")).decision is Verdict.ALLOW
    assert _decide(eng, seed(resource="x/y", source_ip="192.168.1.1")).decision is Verdict.DENY
    night = seed()["ts"] + 10 * 60 * MIN
    d = _decide(eng, seed(resource="x/y", ts=night, last_auth_ts=night - MIN))
    assert d.decision is Verdict.DENY
    assert "condition: outside business hours" in d.reasons


def test_behaviour_signals_lower_trust_and_are_reported(engine: TrustEngine, seed: Seed) -> None:
    known = UserBehaviour(score=85, known_devices=("laptop_1",))
    d = engine.decide(seed(), known)
    assert "behaviour: new_device" in d.reasons
    assert d.scores is not None


def test_ids_are_deterministic(engine: TrustEngine, seed: Seed) -> None:
    a, b = _decide(engine, seed()), _decide(engine, seed())
    assert a.to_record() == b.to_record()
    assert _decide(engine, seed(event_id="other")).decision_id != a.decision_id


def _avro_roundtrip(record: dict[str, Any]) -> Any:
    schema = fastavro.parse_schema(json.loads(SCHEMA.read_text()))
    assert fastavro.validation.validate(record, schema, raise_errors=True)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, ("dharma.predictions.TrustDecision", record))
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema, schema, return_record_name=True)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"mfa_enabled": False}, {"roles": []}, {"resource": "a/../b"}, {"device": None}],
)
def test_record_matches_avro_schema(engine: TrustEngine, seed: Seed, overrides: Any) -> None:
    record = _decide(engine, seed(**overrides)).to_record()
    schema = json.loads(SCHEMA.read_text())
    branch = next(b for b in schema if b["name"] == "TrustDecision")
    assert sorted(record) == sorted(f["name"] for f in branch["fields"])
    name, back = _avro_roundtrip(record)
    assert name == "dharma.predictions.TrustDecision"
    assert back["ts"].timestamp() * 1000 == record["ts"]
    assert {k: v for k, v in back.items() if k != "ts"} == {
        k: v for k, v in record.items() if k != "ts"
    }


def test_hostile_echo_is_sanitised(engine: TrustEngine, seed: Seed) -> None:
    raw = seed(resource="db/\x00x\ud800" + "y" * 5000)
    raw["evil\x00key"] = 1
    record = engine.decide(raw).to_record()
    assert record["decision"] == "DENY"
    text = record["resource"] + "".join(record["reasons"])
    assert not any(ord(c) < 32 for c in text)
    assert len(record["resource"]) <= 1024
    text.encode("utf-8")
    _avro_roundtrip(record)


@given(st.lists(st.text(), min_size=1, max_size=3))
def test_deterministic_id_is_uuid5(parts: list[str]) -> None:
    try:
        expected = str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))
    except UnicodeEncodeError:  # lone surrogates: both refuse
        with pytest.raises(UnicodeEncodeError):
            deterministic_id(*parts)
        return
    assert deterministic_id(*parts) == expected


DAY = 24 * 60 * MIN


def test_a_request_dated_two_days_ago_is_stale(engine: TrustEngine, seed: Seed) -> None:
    raw = seed()
    assert _decide(engine, raw).decision is Verdict.ALLOW  # on its merits
    d = engine.decide(raw, UserBehaviour(score=85), now_ms=raw["ts"] + 2 * DAY)
    assert (d.decision, d.reasons[0], d.policy_id, d.session_id) == (
        Verdict.DENY, "stale_request", None, None)
    assert d.decision_id != _decide(engine, raw).decision_id  # its own id: audited apart
    assert d.to_record()["trust_level"] == "NONE"


@pytest.mark.parametrize(("now_offset_s", "verdict", "reason"), [
    (-31, Verdict.DENY, "clock_skew"), (-30, Verdict.ALLOW, None), (0, Verdict.ALLOW, None),
    (900, Verdict.ALLOW, None), (901, Verdict.DENY, "stale_request")])
def test_freshness_window(engine: TrustEngine, seed: Seed, now_offset_s: int,
                          verdict: Verdict, reason: str | None) -> None:
    raw = seed()
    d = engine.decide(raw, UserBehaviour(score=85), now_ms=raw["ts"] + now_offset_s * 1000)
    assert d.decision is verdict
    assert reason is None or d.reasons[0] == reason


@given(offset_ms=st.integers(-30 * DAY, 30 * DAY))
def test_no_allow_outside_the_freshness_window(seed: Seed, offset_ms: int) -> None:
    raw = seed()
    d = ENGINE.decide(raw, UserBehaviour(score=85), now_ms=raw["ts"] - offset_ms)
    if d.decision is Verdict.ALLOW:
        assert -900_000 <= offset_ms <= 30_000


def test_posture_and_risk_events_are_not_judged_by_their_age(engine: TrustEngine,
                                                             seed: Seed) -> None:
    from dharma.agents.trust import AccessEvent, parse_access_event

    for kind in ("posture_update", "risk_signal"):
        event = parse_access_event(seed(event_type=kind, resource="", action=""))
        assert isinstance(event, AccessEvent)
        assert engine.untimely(event, event.ts_ms + 30 * DAY) is None


def test_skew_and_freshness_are_configurable(seed: Seed) -> None:
    strict = TrustEngine(ENGINE.policies, TrustConfig(clock_skew_seconds=5,
                                                      max_request_age_seconds=60))
    raw = seed()
    assert strict.decide(raw, UserBehaviour(score=85), now_ms=raw["ts"] - 6000).reasons[0] == \
        "clock_skew"
    assert strict.decide(raw, UserBehaviour(score=85), now_ms=raw["ts"] + 61_000).reasons[0] == \
        "stale_request"
    assert TrustConfig().replay_guard_s == 900 + 30  # session lifetime + skew
    assert TrustConfig(max_request_age_seconds=400 * 86_400).replay_guard_s == 930
    with pytest.raises(ValueError, match="replay_guard_seconds"):
        TrustConfig(replay_guard_seconds=900)


def test_refused_record_with_absurd_time_is_storable(engine: TrustEngine, seed: Seed) -> None:
    d = engine.deny_raw(seed(ts=2**62), "invalid access event", decision_id="x")
    assert (d.ts_ms, d.decision_id) == (0, "x")
