"""Pure zero-trust logic: the single import surface for the trust agent.

Nothing here imports faust.  The agent body is::

    event = parse_access_event(record)          # AccessEvent | Rejection
    if isinstance(event, Rejection):
        dead-letter(record, event.reason); continue
    behaviour = UserBehaviour.from_dict(table.get(event.user_id) or {})
    decision = engine.decide(event, behaviour, now_ms=clock_ms)  # never raises, fails closed
    table[event.user_id] = behaviour.observe(event, decision).to_dict()
    emit(decision.to_record())                  # ml.predictions TrustDecision
"""

from __future__ import annotations

from dharma.agents.trust.behaviour import BehaviourRules, UserBehaviour, haversine_km
from dharma.agents.trust.config import TrustConfig
from dharma.agents.trust.engine import Decision, TrustEngine, Verdict, deterministic_id
from dharma.agents.trust.index import (
    PolicyError,
    PolicySet,
    default_policy_dir,
    load_policy_set,
    validate_policies,
)
from dharma.agents.trust.models import (
    AccessEvent,
    DevicePosture,
    GeoLocation,
    PatchLevel,
    Rejection,
    parse_access_event,
)
from dharma.agents.trust.policy import Conditions, ForbidWhen, Policy
from dharma.agents.trust.scoring import TrustLevel, TrustScores, score_event, trust_level
from dharma.agents.trust.session import Session, revalidate
from dharma.agents.trust.shadow import ShadowReport, shadow_compare

__all__ = [
    "AccessEvent",
    "BehaviourRules",
    "Conditions",
    "Decision",
    "DevicePosture",
    "ForbidWhen",
    "GeoLocation",
    "PatchLevel",
    "Policy",
    "PolicyError",
    "PolicySet",
    "Rejection",
    "Session",
    "ShadowReport",
    "TrustConfig",
    "TrustEngine",
    "TrustLevel",
    "TrustScores",
    "UserBehaviour",
    "Verdict",
    "default_engine",
    "default_policy_dir",
    "deterministic_id",
    "haversine_km",
    "load_policy_set",
    "parse_access_event",
    "revalidate",
    "score_event",
    "shadow_compare",
    "trust_level",
    "validate_policies",
]


def default_engine(config: TrustConfig | None = None) -> TrustEngine:
    """An engine over the packaged default policy set."""
    return TrustEngine(load_policy_set(default_policy_dir()), config)
