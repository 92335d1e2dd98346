"""What the engine remembers and when it judges: compromised accounts, reported postures,
the deciding clock, sessions only for requests a replay guard covers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from dharma.agents.trust import (
    AccessEvent,
    TrustConfig,
    TrustEngine,
    UserBehaviour,
    Verdict,
    parse_access_event,
)
from dharma.agents.trust.behaviour import MAX_DEVICES, ReportedPosture
from dharma.streams.checkpoint import strict_json
from dharma.streams.errors import BrokenCheckpoint

Seed = Callable[..., dict[str, Any]]
MIN = 60_000
HOUR = 60 * MIN


def _ev(seed: Seed, **kw: Any) -> AccessEvent:
    event = parse_access_event(seed(**kw))
    assert isinstance(event, AccessEvent)
    return event


def _update(seed: Seed, kind: str, **kw: Any) -> AccessEvent:
    return _ev(seed, event_type=kind, resource="", action="", **kw)


@pytest.mark.parametrize("reason", ["account_compromise", "credential_leak", "session_hijack"])
def test_a_compromised_account_is_denied_until_the_hold_passes(engine: TrustEngine, seed: Seed,
                                                               reason: str) -> None:
    raw = seed()
    learnt = raw["ts"] + MIN  # the worker's clock when the signal arrives
    before = UserBehaviour(score=85, known_devices=("device_12345",))
    after = before.observe(_update(seed, "risk_signal", risk_reason=reason), "update",
                           at_ms=learnt)
    assert after.compromised_ms == learnt
    again = dict(raw, event_id="evt-again", ts=learnt + 1000, last_auth_ts=learnt)
    held = engine.decide(again, after, now_ms=learnt + 1000)
    assert (held.decision, held.reasons[0], held.session_id) == (
        Verdict.DENY, "account_compromised", None)
    hold = engine.config.compromise_hold_seconds * 1000
    late = dict(again, ts=learnt + hold, last_auth_ts=learnt + hold - MIN)
    assert engine.decide(late, after, now_ms=learnt + hold - 1).reasons[0] == \
        "account_compromised"
    assert engine.decide(late, after, now_ms=learnt + hold).decision is Verdict.ALLOW
    # its JSON form keeps it
    assert UserBehaviour.from_dict(after.to_dict()) == after


def test_other_risks_do_not_hold_the_account(engine: TrustEngine, seed: Seed) -> None:
    before = UserBehaviour(score=85, known_devices=("device_12345",))
    for reason in ("malware_detected", "odd_login"):
        after = before.observe(_update(seed, "risk_signal", risk_reason=reason), "update")
        assert after.compromised_ms is None


def test_the_hold_is_configurable_and_a_second_signal_extends_it(seed: Seed,
                                                                 engine: TrustEngine) -> None:
    short = TrustEngine(engine.policies, TrustConfig(compromise_hold_seconds=600))
    raw = seed()
    risk = _update(seed, "risk_signal", risk_reason="credential_leak")
    b = UserBehaviour(score=85).observe(risk, "update", at_ms=raw["ts"])
    assert short.decide(raw, b, now_ms=raw["ts"] + 599_000).reasons[0] == "account_compromised"
    later = b.observe(risk, "update", at_ms=raw["ts"] + 500_000)
    older = later.observe(risk, "update", at_ms=raw["ts"])  # never moves back in time
    assert later.compromised_ms == older.compromised_ms == raw["ts"] + 500_000
    assert short.decide(raw, later, now_ms=raw["ts"] + 700_000).reasons[0] == \
        "account_compromised"


BAD = {"encrypted": False, "firewall": False, "antivirus": False, "compliance_score": 10.0,
       "patch_level": "outdated"}


def test_a_reported_posture_bounds_what_the_device_claims(engine: TrustEngine,
                                                          seed: Seed) -> None:
    raw = seed()
    good = UserBehaviour(score=85, known_devices=("device_12345",))
    assert engine.decide(raw, good).decision is Verdict.ALLOW
    reported = good.observe(_update(seed, "posture_update", device=BAD), "update")
    denied = engine.decide(raw, reported)
    assert denied.decision is Verdict.DENY
    assert denied.scores is not None and denied.scores.compliance == 10.0
    assert any(r.startswith("posture: as reported") for r in denied.reasons)
    assert engine.decide(seed(device={"device_id": "other"}), reported).decision is \
        Verdict.ALLOW  # another device: its own posture
    fixed = reported.observe(_update(seed, "posture_update", ts=raw["ts"] + MIN), "update")
    assert engine.decide(raw, fixed).decision is Verdict.ALLOW
    # an old bad report replayed over a newer good one changes nothing
    assert fixed.observe(_update(seed, "posture_update", device=BAD), "update") == fixed


def test_a_report_dated_in_the_future_does_not_outrank_the_next_one(seed: Seed) -> None:
    now = seed()["ts"]
    ahead = _update(seed, "posture_update", ts=now + 365 * 24 * HOUR, device=BAD)
    b = UserBehaviour().observe(ahead, "update", at_ms=now)
    assert b.postures[0].at_ms == now  # dated at the deciding clock
    fixed = b.observe(_update(seed, "posture_update", ts=now + MIN), "update", at_ms=now + MIN)
    assert fixed.reported_posture("device_12345") == ReportedPosture(
        "device_12345", now + MIN, 95.0, True, True, True, "latest")


def test_the_worse_of_claimed_and_reported_is_taken_component_by_component(
        engine: TrustEngine, seed: Seed) -> None:
    report = _update(seed, "posture_update", device={"compliance_score": 99.0,
                                                     "antivirus": False})
    b = UserBehaviour(score=85).observe(report, "update")
    claim = seed(device={"compliance_score": 92.0, "patch_level": "recent"})
    d = engine.decide(claim, b)
    assert d.scores is not None and d.scores.compliance == 92.0
    # 92 x 0.4 + 20 + 15 + 0 (antivirus reported off) + 5 (recent, claimed)
    assert d.scores.floats[1] == 76.8


def test_reported_postures_are_bounded(seed: Seed) -> None:
    b = UserBehaviour()
    for i in range(MAX_DEVICES + 5):
        b = b.observe(_update(seed, "posture_update", ts=seed()["ts"] + i * MIN,
                              device={"device_id": f"d{i}"}), "update")
    assert len(b.postures) == 10
    assert b.postures[-1].device_id == f"d{MAX_DEVICES + 4}"
    assert b.reported_posture("d0") is None
    assert UserBehaviour.from_dict(b.to_dict()) == b


@pytest.mark.parametrize("posture", [
    {"compliance_score": 101.0}, {"patch_level": "perfect"}, {"encrypted": 1},
    {"device_id": "../x"}, {"at_ms": -1}, {"extra": 1}])
def test_stored_postures_are_validated(posture: dict[str, Any]) -> None:
    """As the behaviour table reads them: strict JSON, every field in its range."""
    good = ReportedPosture("d1", 1_765_204_215_000, 95.0, True, True, True, "latest").to_dict()
    read = strict_json(UserBehaviour)
    assert read(orjson.dumps({"postures": [good]})).postures[0].device_id == "d1"
    with pytest.raises(BrokenCheckpoint):
        read(orjson.dumps({"postures": [{**good, **posture}]}))


def test_when_a_request_is_made_is_the_deciding_clocks_to_say(engine: TrustEngine,
                                                               seed: Seed) -> None:
    """Backdating a request (within the freshness window) buys neither business hours nor
    a recent authentication; a replay without a clock judges at the request's time."""
    ts = int(datetime(2025, 12, 8, 17, 55, tzinfo=UTC).timestamp()) * 1000
    raw = seed(ts=ts, last_auth_ts=ts - MIN)
    b = UserBehaviour(score=85, known_devices=("device_12345",))
    at_event = engine.decide(raw, b)
    live = engine.decide(raw, b, now_ms=ts + 10 * MIN)  # 18:05: after hours, auth 11 min old
    assert at_event.scores is not None and live.scores is not None
    assert (at_event.scores.business_hours, at_event.scores.recent_auth) == (True, True)
    assert (live.scores.business_hours, live.scores.recent_auth) == (False, False)
    # a request dated ahead (within the skew) is judged at its own, later, time for recency
    ahead = engine.decide(dict(raw, last_auth_ts=ts + 20_000), b, now_ms=ts - 10_000)
    assert ahead.scores is not None and ahead.scores.recent_auth


def test_the_unusual_hour_is_the_deciding_clocks(seed: Seed) -> None:
    b = UserBehaviour(score=70)
    day = seed()["ts"]
    for i in range(30):
        b = b.observe(_ev(seed, event_id=f"e{i}", ts=day + i * MIN), "ALLOW")
    backdated = _ev(seed, ts=day + 20 * MIN)  # claims the usual afternoon hour
    assert "unusual_hour" not in b.signals(backdated)
    assert "unusual_hour" in b.signals(backdated, at_ms=day + 10 * HOUR)  # decided at night
    counted = b.observe(backdated, "ALLOW", at_ms=day + 10 * HOUR)
    assert counted.hours[(day + 10 * HOUR) // HOUR % 24] == 1


def test_a_request_older_than_a_session_lifetime_is_not_allowed(engine: TrustEngine,
                                                                  seed: Seed) -> None:
    """Only with a freshness window longer than a session (a replay of history): its
    session would be over already, so it is DENY ``session_expired`` (the permit named in
    the reasons) and no replay guard has to cover it, however long the window."""
    long_window = TrustEngine(engine.policies, TrustConfig(max_request_age_seconds=86_400))
    raw = seed()
    b = UserBehaviour(score=85, known_devices=("device_12345",))
    fresh = long_window.decide(raw, b, now_ms=raw["ts"] + 900_000)
    old = long_window.decide(raw, b, now_ms=raw["ts"] + 900_001)
    assert (fresh.decision, fresh.expires_in, fresh.session_id is not None) == (
        Verdict.ALLOW, 900, True)
    assert (old.decision, old.expires_in, old.session_id, old.policy_id) == (
        Verdict.DENY, 0, None, None)
    assert old.reasons[0] == "session_expired" and old.reasons[2].startswith("permitted by")
    assert old.decision_id != fresh.decision_id
    assert long_window.config.replay_guard_s == 930
