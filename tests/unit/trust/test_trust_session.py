"""Live sessions: revalidate() keeps, challenges or revokes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from dharma.agents.trust import (
    AccessEvent,
    Session,
    TrustEngine,
    UserBehaviour,
    Verdict,
    parse_access_event,
    revalidate,
)

Seed = Callable[..., dict[str, Any]]
MIN = 60_000


@pytest.fixture
def session(engine: TrustEngine, seed: Seed) -> Session:
    event = parse_access_event(seed())
    assert isinstance(event, AccessEvent)
    decision = engine.decide(event, UserBehaviour(score=85))
    return Session.open(decision, event)


def _update(seed: Seed, kind: str, **kw: Any) -> dict[str, Any]:
    ts = seed()["ts"] + MIN
    return seed(event_id=f"upd-{kind}", event_type=kind, resource="", action="", ts=ts, **kw)


def test_session_json_round_trip(session: Session) -> None:
    assert session.to_dict() == dataclasses.asdict(session)
    assert Session.from_dict(json.loads(json.dumps(session.to_dict()))) == session
    assert json.loads(orjson.dumps(session)) == session.to_dict()  # what the store writes


@pytest.mark.parametrize("change", [{"opened_ms": "1"}, {"extra": 1}, {"request": None}])
def test_stored_session_validated(session: Session, change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Session.from_dict({**session.to_dict(), **change})


def test_only_allow_opens_session(engine: TrustEngine, seed: Seed) -> None:
    event = parse_access_event(seed(mfa_enabled=False))
    assert isinstance(event, AccessEvent)
    with pytest.raises(ValueError):
        Session.open(engine.decide(event), event)


def test_good_posture_keeps(engine: TrustEngine, seed: Seed, session: Session) -> None:
    d = revalidate(engine, session, _update(seed, "posture_update"), UserBehaviour(score=85))
    assert d.decision is Verdict.ALLOW
    assert d.session_id == session.session_id
    assert d.event_id == "upd-posture_update"
    assert d.decision_id != session.session_id


def test_posture_drop_revokes(engine: TrustEngine, seed: Seed, session: Session) -> None:
    upd = _update(seed, "posture_update", device={"compliance_score": 40.0, "encrypted": False})
    d = revalidate(engine, session, upd, UserBehaviour(score=85))
    assert d.decision is Verdict.REVOKE
    assert d.to_record()["decision"] == "REVOKE"


def test_critical_risk_revokes(engine: TrustEngine, seed: Seed, session: Session) -> None:
    upd = _update(seed, "risk_signal", risk_reason="credential_leak")
    d = revalidate(engine, session, upd)
    assert d.decision is Verdict.REVOKE
    assert "critical risk: credential_leak" in d.reasons


def test_mild_risk_re_decides(engine: TrustEngine, seed: Seed, session: Session) -> None:
    upd = _update(seed, "risk_signal", risk_reason="unusual_download")
    d = revalidate(engine, session, upd, UserBehaviour(score=85))
    assert d.decision is Verdict.ALLOW
    assert d.reasons[0] == "risk: unusual_download"


def test_mfa_lost_challenges(engine: TrustEngine, seed: Seed, session: Session) -> None:
    upd = _update(seed, "access_request", mfa_enabled=False)
    upd.update(resource="database/production/customer_db", action="read")
    d = revalidate(engine, session, upd, UserBehaviour(score=85))
    assert d.decision is Verdict.CHALLENGE


def test_invalid_update_revokes(engine: TrustEngine, session: Session) -> None:
    d = revalidate(engine, session, {"event_id": "bad"})
    assert d.decision is Verdict.REVOKE
    assert d.session_id == session.session_id
