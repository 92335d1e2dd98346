"""The seed's worked example (architecture.md, zero-trust flow) comes out exactly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dharma.agents.trust import AccessEvent, TrustConfig, UserBehaviour, parse_access_event
from dharma.agents.trust.scoring import score_event


def test_seed_scores_exact(seed: Callable[..., dict[str, Any]]) -> None:
    event = parse_access_event(seed())
    assert isinstance(event, AccessEvent)
    scores = score_event(event, 85, TrustConfig())
    assert (float(scores.device), float(scores.user), float(scores.context)) == (98.0, 100.0, 75.0)
    assert float(scores.overall) == 93.05
    assert scores.level.name == "FULL"


def test_seed_decision_exact(engine: Any, seed: Callable[..., dict[str, Any]]) -> None:
    record = engine.decide(seed(), UserBehaviour(score=85)).to_record()
    assert record["decision"] == "ALLOW"
    assert record["trust_score"] == 93.05
    assert record["trust_level"] == "FULL"
    assert record["device_trust"] == 98.0
    assert record["user_trust"] == 100.0
    assert record["context_trust"] == 75.0
    assert record["policy_id"] == "pol_001"
    assert record["expires_in"] == 900
    assert record["ts"] == 1765204215000
    assert record["session_id"] is not None
    assert record["reasons"] == ["permitted by pol_001: Production Database Access"]


def test_seed_with_datetimes(engine: Any, seed: Callable[..., dict[str, Any]]) -> None:
    from datetime import UTC, datetime

    raw = seed()
    raw["ts"] = datetime.fromtimestamp(raw["ts"] / 1000, tz=UTC)
    raw["last_auth_ts"] = datetime.fromtimestamp(raw["last_auth_ts"] / 1000, tz=UTC)
    assert engine.decide(raw, UserBehaviour(score=85)).to_record()["trust_score"] == 93.05
