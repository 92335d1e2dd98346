"""Zero-trust access decisions: trust scoring, user behaviour, policy engine.

The batch step is :class:`~dharma.agents.trust.logic.TrustStep`; the rules are in
``docs/trust.md``.
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
from dharma.agents.trust.logic import MemoryTables, TrustStep
from dharma.agents.trust.models import (
    AccessEvent,
    DevicePosture,
    GeoLocation,
    InvalidAccessEvent,
    PatchLevel,
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
    "InvalidAccessEvent",
    "MemoryTables",
    "PatchLevel",
    "Policy",
    "PolicyError",
    "PolicySet",
    "Session",
    "ShadowReport",
    "TrustConfig",
    "TrustEngine",
    "TrustLevel",
    "TrustScores",
    "TrustStep",
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
