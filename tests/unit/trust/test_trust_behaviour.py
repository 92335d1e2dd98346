"""The user behaviour rule and its bounded, JSON-serialisable state."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from dharma.agents.trust import AccessEvent, UserBehaviour, haversine_km, parse_access_event
from dharma.agents.trust.behaviour import BEHAVIOUR_ADAPTER, MAX_RECENT_IDS, ReportedPosture

Seed = Callable[..., dict[str, Any]]
MIN = 60_000


def _ev(seed: Seed, **kw: Any) -> AccessEvent:
    event = parse_access_event(seed(**kw))
    assert isinstance(event, AccessEvent)
    return event


def test_defaults_and_json_round_trip(seed: Seed) -> None:
    b = UserBehaviour()
    assert b.score == 50.0
    b = b.observe(_ev(seed, location={"name": "Paris", "lat": 48.85, "lon": 2.35}), "ALLOW")
    wire = json.loads(json.dumps(b.to_dict()))
    assert UserBehaviour.from_dict(wire) == b
    assert b.to_dict() == BEHAVIOUR_ADAPTER.dump_python(b, mode="json")  # as pydantic dumps it


def test_first_device_is_not_new_but_second_is(seed: Seed) -> None:
    b = UserBehaviour(score=70)
    assert b.signals(_ev(seed)) == []
    b = b.observe(_ev(seed), "ALLOW")
    other = _ev(seed, ts=seed()["ts"] + MIN, device={"device_id": "laptop_2"})
    assert b.signals(other) == ["new_device"]
    assert b.effective_score(["new_device"]) == b.score - 10
    assert b.observe(other, "ALLOW").score == b.score - 10


def test_impossible_travel(seed: Seed) -> None:
    paris = {"name": "Paris", "lat": 48.8566, "lon": 2.3522}
    sydney = {"name": "Sydney", "lat": -33.8688, "lon": 151.2093}
    b = UserBehaviour(score=70).observe(_ev(seed, location=paris), "ALLOW")
    hop = _ev(seed, ts=seed()["ts"] + 60 * MIN, location=sydney)
    assert "impossible_travel" in b.signals(hop)
    assert b.observe(hop, "ALLOW").score <= 70 + 0.5 - 25
    slow = _ev(seed, ts=seed()["ts"] + 30 * 60 * MIN, location=sydney)  # 30 h later
    assert "impossible_travel" not in b.signals(slow)
    near = _ev(seed, ts=seed()["ts"] + MIN, location={"name": "x", "lat": 48.9, "lon": 2.4})
    assert "impossible_travel" not in b.signals(near)
    assert round(haversine_km(48.8566, 2.3522, -33.8688, 151.2093)) in range(16900, 17000)


def test_unusual_hour_after_enough_history(seed: Seed) -> None:
    b = UserBehaviour(score=70)
    for i in range(25):
        b = b.observe(_ev(seed, event_id=f"e{i}", ts=seed()["ts"] + i * MIN), "ALLOW")
    night = seed()["ts"] + 12 * 60 * MIN  # 02:30 UTC
    assert "unusual_hour" in b.signals(_ev(seed, ts=night, last_auth_ts=night))
    assert "unusual_hour" not in UserBehaviour().signals(_ev(seed, ts=night, last_auth_ts=night))


def test_denial_burst_lowers_score(seed: Seed) -> None:
    b = UserBehaviour(score=70)
    for i in range(4):
        b = b.observe(_ev(seed, ts=seed()["ts"] + i * 1000), "DENY")
    assert b.score == 70
    b = b.observe(_ev(seed, ts=seed()["ts"] + 5000), "DENY")
    assert b.score == 65
    later = b.observe(_ev(seed, ts=seed()["ts"] + 60 * MIN), "DENY")
    assert later.score == 65  # window passed: no burst
    assert len(later.denials) == 1


def test_clean_history_rises_slowly_and_rate_limited(seed: Seed) -> None:
    b = UserBehaviour(score=70)
    for i in range(10):
        b = b.observe(_ev(seed, ts=seed()["ts"] + i * 1000), "ALLOW")
    assert b.score == 70.5  # one credit within the minute
    for i in range(1, 11):
        b = b.observe(_ev(seed, ts=seed()["ts"] + i * MIN), "ALLOW")
    assert b.score == 75.5
    assert UserBehaviour(score=100).observe(_ev(seed), "ALLOW").score == 100


def test_risk_signal_and_posture_update(seed: Seed) -> None:
    risk = _ev(seed, event_type="risk_signal", resource="", action="", risk_reason="odd")
    assert UserBehaviour(score=70).observe(risk, "DENY").score == 50
    assert UserBehaviour(score=10).observe(risk, "DENY").score == 0
    posture = _ev(seed, event_type="posture_update", resource="", action="")
    after = UserBehaviour(score=70).observe(posture, "DENY")
    assert after.score == 70 and after.events == 0  # a report, not a request
    assert after.reported_posture("device_12345") == ReportedPosture.of(posture)


def test_memory_is_bounded(seed: Seed) -> None:
    b = UserBehaviour()
    for i in range(3000):
        ev = _ev(seed, ts=seed()["ts"] + i * 1000, device={"device_id": f"d{i}"})
        b = b.observe(ev, "DENY" if i % 2 else "ALLOW")
    assert len(b.known_devices) == 10
    assert b.known_devices[-1] == "d2998"  # the last ALLOWed one (d2999 was denied)
    assert len(b.hours) == 24 and sum(b.hours) <= 1000
    assert len(b.denials) <= 32
    assert 0 <= b.score <= 100
    assert len(json.dumps(b.to_dict())) < 2000
    assert b.to_dict() == BEHAVIOUR_ADAPTER.dump_python(b, mode="json")


def test_observe_accepts_decision_objects(engine: Any, seed: Seed) -> None:
    b = UserBehaviour(score=70)
    d = engine.decide(seed(), b)
    assert b.observe(_ev(seed), d) == b.observe(_ev(seed), d.decision.value)


def test_alert_state_dict_matches_pydantic_and_round_trips() -> None:
    from dharma.agents.trust.alerts import ALERT_STATE_ADAPTER, AlertKind, AlertMemory

    fired: dict[AlertKind, int] = {"forbidden_probe": 1_765_204_215_000}
    for state in (AlertMemory(), AlertMemory(burst_active=True, last_fired=fired)):
        assert state.to_dict() == ALERT_STATE_ADAPTER.dump_python(state, mode="json")
        assert AlertMemory.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_replayed_records_are_recognised_by_partition_and_offset(seed: Seed) -> None:
    b = UserBehaviour().observe(_ev(seed), "ALLOW", position=(3, 41))
    assert b.last_seen == (3, 41) and b.events == 1
    assert b.has_seen((3, 41)) and b.has_seen((3, 7))
    assert not b.has_seen((3, 42))
    assert not b.has_seen((1, 5))  # another partition: offsets are not comparable
    assert not UserBehaviour().has_seen((0, 0))
    risk = b.observe(_ev(seed, event_type="risk_signal", risk_reason="odd"), "risk",
                     position=(3, 50))
    assert risk.last_seen == (3, 50)
    assert risk.to_dict() == BEHAVIOUR_ADAPTER.dump_python(risk, mode="json")
    assert UserBehaviour.from_dict(json.loads(json.dumps(risk.to_dict()))) == risk


@pytest.mark.parametrize("stored", [{"score": 101}, {"score": -1}, {"unknown": 1},
                                    {"hours": "x"}, {"last_seen": [1]}])
def test_stored_behaviour_validated(stored: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        UserBehaviour.from_dict(stored)


def test_changelog_json_is_the_dict(seed: Seed) -> None:
    """orjson writes the dataclasses as their ``to_dict`` (what their tables log)."""
    from dharma.agents.trust.alerts import AlertKind, AlertMemory

    b = UserBehaviour().observe(_ev(seed, location={"name": "Paris", "lat": 48.85, "lon": 2.35}),
                                "DENY", position=(2, 9))
    fired: dict[AlertKind, int] = {"forbidden_probe": 1_765_204_215_000}
    for value in (b, UserBehaviour(), AlertMemory(), AlertMemory(True, fired)):
        assert orjson.loads(orjson.dumps(value)) == value.to_dict()


def test_quiet_denial_keeps_the_alert_state_object(engine: Any, seed: Seed) -> None:
    """A DENY that raises nothing returns the same state: the agent writes no table record."""
    from dharma.agents.trust.alerts import AlertMemory, security_alerts

    event = _ev(seed, mfa_enabled=False, roles=["intern"])
    before = UserBehaviour()
    decision = engine.decide(event, before)
    assert decision.decision.value == "DENY"
    state = AlertMemory()
    raised, after = security_alerts(event, decision, before, before.observe(event, decision),
                                    state, frozenset())
    assert raised == [] and after is state


def test_a_refused_request_teaches_nothing(seed: Seed) -> None:
    """A DENY or CHALLENGE from an unknown device, place or hour does not make the next
    request from it look familiar."""
    paris = {"name": "Paris", "lat": 48.8566, "lon": 2.3522}
    sydney = {"name": "Sydney", "lat": -33.8688, "lon": 151.2093}
    b = UserBehaviour(score=70).observe(_ev(seed, location=paris), "ALLOW")
    for i, outcome in enumerate(("DENY", "CHALLENGE")):
        probe = _ev(seed, event_id=f"p{i}", ts=seed()["ts"] + (i + 1) * 60 * MIN,
                    device={"device_id": "stolen_laptop"}, location=sydney)
        b = b.observe(probe, outcome)
    assert b.known_devices == ("device_12345",)
    assert (b.last_lat, b.last_lon) == (paris["lat"], paris["lon"])
    assert sum(b.hours) == 1
    again = _ev(seed, event_id="p9", ts=seed()["ts"] + 3 * 60 * MIN,
                device={"device_id": "stolen_laptop"}, location=sydney)
    assert {"new_device", "impossible_travel"} <= set(b.signals(again))
    assert b.events == 3


def test_a_duplicate_at_another_offset_is_recognised_by_its_event_id(seed: Seed) -> None:
    """A producer's retry writes the same event again at a later offset."""
    b = UserBehaviour().observe(_ev(seed), "ALLOW", position=(3, 41))
    assert b.has_seen((3, 42), _ev(seed).event_id)
    assert not b.has_seen((3, 42), "evt-another")
    for n in range(MAX_RECENT_IDS):
        b = b.observe(_ev(seed, event_id=f"evt-{n}"), "ALLOW", position=(3, 43 + n))
    assert len(b.recent_ids) == MAX_RECENT_IDS  # bounded: the oldest forgotten
    assert not b.has_seen((3, 100), _ev(seed).event_id)
    assert UserBehaviour.from_dict(json.loads(json.dumps(b.to_dict()))) == b
