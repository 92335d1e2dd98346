"""Access policies: the YAML model, resource globs and the per-policy checks.

A policy file looks like::

    version: "2025.12.1"
    policies:
      - id: pol_001
        name: Production Database Access
        resource: database/production/*
        actions: [read, write]
        roles_any: [admin, dba]
        min_trust_level: HIGH
        conditions: {mfa_required: true, min_device_compliance: 90}

Permit policies grant access when every check passes, and every permit names
the roles it grants to (``roles_any``, never empty) and a band above NONE:
nothing is granted to an identity without a role or at the lowest trust.
``effect: forbid`` policies deny, overriding any permit, when all of their
``when`` predicates hold.  Every forbid predicate describes *low* trust (trust below a band, no
MFA, outside business hours or networks, lacking an exempting role) or the
request's target (a production resource, an action not exempted), so lowering
an input can only make a forbid apply, never lift it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dharma.agents.trust.models import AccessEvent
from dharma.agents.trust.networks import IPNetwork, check_cidrs, in_networks, parse_networks
from dharma.agents.trust.scoring import TrustLevel, TrustScores

__all__ = [
    "CompiledPolicy",
    "Conditions",
    "ForbidWhen",
    "Policy",
    "compile_policy",
    "forbid_applies",
    "permit_failures",
    "permit_ok",
]

_GLOB_SEGMENT = re.compile(r"^(\*\*|[A-Za-z0-9_.*\-]{1,128})$")
_Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_][\w.:\-]*$")]
_Level = Literal["NONE", "LOW", "MEDIUM", "HIGH", "FULL"]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Conditions(_Spec):
    """Extra requirements of a permit policy."""

    mfa_required: bool = False
    recent_auth_required: bool = False
    min_device_compliance: Annotated[float, Field(ge=0, le=100)] | None = None
    business_hours_only: bool = False
    #: the source address lies in the configured internal networks
    #: (``TrustConfig.internal_networks``)
    internal_network_required: bool = False
    allowed_networks: tuple[str, ...] = ()

    _cidrs = field_validator("allowed_networks")(check_cidrs)


class ForbidWhen(_Spec):
    """Predicates of a forbid policy; it applies when all given ones hold.

    ``production`` and ``outside_internal_networks`` follow the engine's
    configuration (``TrustConfig.production_segments`` and ``internal_networks``),
    so a guard rail means what the scores mean.
    """

    trust_below: _Level | None = None
    device_compliance_below: Annotated[float, Field(ge=0, le=100)] | None = None
    mfa_missing: bool = False
    outside_business_hours: bool = False
    outside_internal_networks: bool = False
    outside_networks: tuple[str, ...] = ()
    #: only on a production resource (a path segment ``production`` or ``prod``)
    production: bool = False
    unless_roles_any: tuple[_Name, ...] = ()
    #: actions the forbid leaves alone (``[read]``: every mutating action is forbidden)
    unless_actions_any: tuple[_Name, ...] = ()

    _cidrs = field_validator("outside_networks")(check_cidrs)


class Policy(_Spec):
    """One access policy as written in YAML (``resource`` or ``resources``)."""

    id: _Name
    name: Annotated[str, Field(min_length=1, max_length=200)]
    version: Annotated[int, Field(ge=1)] = 1
    description: str = ""
    effect: Literal["permit", "forbid"] = "permit"
    resources: Annotated[tuple[str, ...], Field(min_length=1, max_length=32)]
    actions: Annotated[tuple[_Name | Literal["*"], ...], Field(min_length=1)]
    roles_any: tuple[_Name, ...] = ()  # required for permits (see _effect_fields)
    min_trust_level: _Level = "MEDIUM"
    conditions: Conditions = Conditions()
    when: ForbidWhen = ForbidWhen()

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "resource" in data:
                data["resources"] = [data.pop("resource"), *data.get("resources", [])]
            if "required_roles" in data:
                data["roles_any"] = data.pop("required_roles")
        return data

    @field_validator("resources")
    @classmethod
    def _globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for glob in value:
            segs = glob.split("/")
            if len(segs) > 16 or not all(_GLOB_SEGMENT.match(s) for s in segs):
                raise ValueError(f"bad resource glob {glob!r}")
            if any(s.startswith(".") for s in segs):
                raise ValueError(f"resource glob segment may not start with '.': {glob!r}")
        return value

    @model_validator(mode="after")
    def _effect_fields(self) -> Policy:
        if self.effect == "forbid" and (self.roles_any or self.conditions != Conditions()):
            raise ValueError("forbid policies take 'when', not roles_any/conditions")
        if self.effect == "permit" and self.when != ForbidWhen():
            raise ValueError("'when' is only for forbid policies")
        if self.effect == "permit" and not self.roles_any:
            raise ValueError("a permit needs roles_any: an identity with a role, never anyone")
        if self.effect == "permit" and self.min_trust_level == "NONE":
            raise ValueError("a permit needs min_trust_level above NONE, the lowest band")
        return self


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy with its sets, networks and bands parsed once at load."""

    policy: Policy
    id: str
    forbid: bool
    actions: frozenset[str] | None
    roles: frozenset[str]
    min_level: TrustLevel
    networks: tuple[IPNetwork, ...]
    forbid_level: TrustLevel | None
    exempt_roles: frozenset[str]
    exempt_actions: frozenset[str]

    def allows_action(self, action: str) -> bool:
        """True when the policy covers ``action``."""
        return self.actions is None or action in self.actions


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Parse a policy's sets, networks and bands once."""
    cidrs = policy.conditions.allowed_networks or policy.when.outside_networks
    forbid_level = policy.when.trust_below
    return CompiledPolicy(
        policy=policy,
        id=policy.id,
        forbid=policy.effect == "forbid",
        actions=None if "*" in policy.actions else frozenset(policy.actions),
        roles=frozenset(policy.roles_any),
        min_level=TrustLevel[policy.min_trust_level],
        networks=parse_networks(tuple(cidrs)),
        forbid_level=TrustLevel[forbid_level] if forbid_level else None,
        exempt_roles=frozenset(policy.when.unless_roles_any),
        exempt_actions=frozenset(policy.when.unless_actions_any),
    )


def permit_ok(cp: CompiledPolicy, event: AccessEvent, scores: TrustScores) -> bool:
    """Fast path of :func:`permit_failures`: True when every check passes."""
    if (cp.roles and cp.roles.isdisjoint(event.roles)) or scores.level < cp.min_level:
        return False
    cond = cp.policy.conditions
    if (cond.mfa_required and not scores.mfa) or (
        cond.recent_auth_required and not scores.recent_auth
    ):
        return False
    limit = cond.min_device_compliance
    if limit is not None and scores.compliance < limit:
        return False
    if (cond.business_hours_only and not scores.business_hours) or (
        cond.internal_network_required and not scores.internal
    ):
        return False
    return not cp.networks or in_networks(event.source_ip, cp.networks)


def permit_failures(cp: CompiledPolicy, event: AccessEvent, scores: TrustScores) -> list[str]:
    """Checks of a permit policy that fail for this request (empty = permit)."""
    fails: list[str] = []
    if cp.roles and cp.roles.isdisjoint(event.roles):
        fails.append(f"role: requires any of {sorted(cp.roles)}")
    if scores.level < cp.min_level:
        fails.append(
            f"trust: requires {cp.min_level.name}, has {scores.level.name} ({scores.overall})"
        )
    cond = cp.policy.conditions
    if cond.mfa_required and not scores.mfa:
        fails.append("condition: MFA required")
    if cond.recent_auth_required and not scores.recent_auth:
        fails.append("condition: recent authentication required")
    compliance = scores.compliance
    if cond.min_device_compliance is not None and compliance < cond.min_device_compliance:
        fails.append(
            f"condition: device compliance {compliance:g} < {cond.min_device_compliance:g}"
        )
    if cond.business_hours_only and not scores.business_hours:
        fails.append("condition: outside business hours")
    if cond.internal_network_required and not scores.internal:
        fails.append("condition: source IP not in the internal networks")
    if cp.networks and not in_networks(event.source_ip, cp.networks):
        fails.append("condition: source IP not in allowed networks")
    return fails


def forbid_applies(cp: CompiledPolicy, event: AccessEvent, scores: TrustScores) -> bool:
    """True when every ``when`` predicate of a forbid policy holds."""
    when = cp.policy.when
    if (when.production and not scores.production) or event.action in cp.exempt_actions:
        return False
    if cp.exempt_roles and not cp.exempt_roles.isdisjoint(event.roles):
        return False
    if cp.forbid_level is not None and not scores.level < cp.forbid_level:
        return False
    limit = when.device_compliance_below
    if limit is not None and not scores.compliance < limit:
        return False
    if (when.mfa_missing and scores.mfa) or (when.outside_business_hours and
                                             scores.business_hours):
        return False
    if when.outside_internal_networks and scores.internal:
        return False
    return not (cp.networks and in_networks(event.source_ip, cp.networks))
