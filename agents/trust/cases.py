"""Table-driven policy test cases (``dharma policy test``), like ``opa test``.

A cases file::

    config: {timezone: UTC}             # optional TrustConfig overrides
    defaults:
      event: {...}                      # a full audit.logs record
      behaviour: {score: 85}            # optional UserBehaviour
    cases:
      - name: seed example
        expect: ALLOW                   # required
        policy: pol_001                 # optional: expected policy_id
        trust_score: 93.05              # optional
        trust_level: FULL               # optional
        reason: "permitted by pol_001: Production Database Access"  # optional: one of the reasons
      - name: no MFA
        event: {mfa_enabled: false}     # deep-merged over defaults.event
        remove: [device.compliance_score]   # optional dotted paths to delete
        expect: CHALLENGE
      - name: two days late
        now: "2025-12-10T14:30:15Z"     # optional deciding clock (the worker's in
        expect: DENY                    # production); none: the request's own time

Timestamps may be epoch ms, ISO-8601 strings or YAML timestamps (naive ones
are read as UTC); ``last_auth_age_s: 180`` sets ``last_auth_ts`` to 180 s
before ``ts``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from dharma.agents.trust.behaviour import UserBehaviour
from dharma.agents.trust.config import TrustConfig
from dharma.agents.trust.engine import Decision, TrustEngine
from dharma.agents.trust.index import PolicySet
from dharma.agents.trust.models import to_epoch_ms

__all__ = ["CaseResult", "load_cases", "run_cases"]


class Case(BaseModel):
    """One row of a cases file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    expect: str
    policy: str | None = None
    trust_score: float | None = None
    trust_level: str | None = None
    reason: str | None = None
    event: dict[str, Any] = {}
    remove: list[str] = []
    behaviour: dict[str, Any] | None = None
    now: datetime | int | None = None


class CasesFile(BaseModel):
    """A whole cases file."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    cases: list[Case]


class CaseResult(BaseModel):
    """Outcome of one case."""

    name: str
    passed: bool
    expected: str
    got: str
    policy: str | None
    trust_score: float
    problems: list[str]
    reasons: list[str]


def load_cases(path: str | Path) -> CasesFile:
    """Read and validate a cases file."""
    return CasesFile.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _ms(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return to_epoch_ms(value if value.tzinfo else value.replace(tzinfo=UTC))
    return value


def build_event(defaults: dict[str, Any], case: Case) -> dict[str, Any]:
    """The record a case describes (defaults, overrides, removals, timestamps)."""
    event = _merge(defaults.get("event", {}), case.event)
    for key in ("ts", "last_auth_ts"):
        if key in event:
            event[key] = _ms(event[key])
    age = event.pop("last_auth_age_s", None)
    if age is not None and isinstance(event.get("ts"), int):
        event["last_auth_ts"] = event["ts"] - int(timedelta(seconds=age).total_seconds() * 1000)
    for dotted in case.remove:
        *parents, leaf = dotted.split(".")
        node = event
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return event


def _check(case: Case, d: Decision) -> list[str]:
    rec = d.to_record()
    problems = []
    if rec["decision"] != case.expect.upper():
        problems.append(f"decision {rec['decision']} != {case.expect.upper()}")
    if case.policy is not None and rec["policy_id"] != case.policy:
        problems.append(f"policy {rec['policy_id']} != {case.policy}")
    if case.trust_score is not None and rec["trust_score"] != case.trust_score:
        problems.append(f"trust_score {rec['trust_score']} != {case.trust_score}")
    if case.trust_level is not None and rec["trust_level"] != case.trust_level.upper():
        problems.append(f"trust_level {rec['trust_level']} != {case.trust_level.upper()}")
    if case.reason is not None and case.reason not in rec["reasons"]:
        problems.append(f"reason {case.reason!r} not in {rec['reasons']}")
    return problems


def run_cases(policies: PolicySet, cases: CasesFile) -> list[CaseResult]:
    """Decide every case and compare with its expectations."""
    engine = TrustEngine(policies, TrustConfig.model_validate(cases.config))
    results = []
    for case in cases.cases:
        raw = case.behaviour if case.behaviour is not None else cases.defaults.get("behaviour")
        behaviour = UserBehaviour.from_dict(raw or {})
        now = _ms(case.now) if case.now is not None else None
        decision = engine.decide(build_event(cases.defaults, case), behaviour, now_ms=now)
        problems = _check(case, decision)
        results.append(
            CaseResult(
                name=case.name,
                passed=not problems,
                expected=case.expect.upper(),
                got=decision.decision.value,
                policy=decision.policy_id,
                trust_score=decision.to_record()["trust_score"],
                problems=problems,
                reasons=list(decision.reasons),
            )
        )
    return results
