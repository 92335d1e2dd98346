"""Red-team findings on the trust engine and its policies (pure: no stack).

Each test is evidence of a finding: its docstring gives the threat, the steps,
what happens today and what should happen.  They are strict xfails so the suite
stays green until the finding is fixed (then the xfail marker must go).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dharma.agents.trust import TrustConfig, UserBehaviour
from dharma.agents.trust.engine import TrustEngine, Verdict
from dharma.agents.trust.index import default_policy_dir, load_policy_set, validate_policies

MS = 1000
#: A Monday afternoon, in business hours in UTC (the default zone).
NOW = datetime(2025, 12, 8, 14, 30, 15, tzinfo=UTC)


def request(**overrides: Any) -> dict[str, Any]:
    """A well-formed access request from a fully compliant device, MFA just done."""
    ms = int(NOW.timestamp()) * MS
    record: dict[str, Any] = {
        "event_id": "evt-attack-1", "ts": ms, "event_type": "access_request",
        "user_id": "attack_user", "roles": ["sre"], "resource": "k8s/production/cluster-1",
        "action": "scale",
        "device": {"device_id": "attack_dev", "os": "Ubuntu 22.04", "encrypted": True,
                   "firewall": True, "antivirus": True, "compliance_score": 100.0,
                   "patch_level": "latest"},
        "mfa_enabled": True, "last_auth_ts": ms - 60 * MS, "source_ip": "203.0.113.9",
        "location": None, "risk_reason": None,
    }
    record.update(overrides)
    return record


def engine(config: TrustConfig | None = None, policies: Path | None = None) -> TrustEngine:
    return TrustEngine(load_policy_set(policies or default_policy_dir()), config)


@pytest.mark.parametrize("damage", ["misspelled", "truncated"])
def test_a_policy_file_without_a_policies_list_is_an_error(tmp_path: Path, damage: str) -> None:
    """Threat: a clumsy operator edits the forbid file and misspells its top-level key
    (``polices:``), or a failed deploy leaves it empty.

    Steps: copy the packaged policies, damage ``90-forbid.yaml`` so, load the directory
    and run ``dharma policy validate``'s check.

    Happens: ``PolicySet.from_documents`` reads ``doc.get("policies", [])`` (and
    ``_read_docs`` turns an empty file into ``[]``): the file contributes no policy and
    no error; ``dharma policy validate`` prints "valid", the worker starts, and
    pol_900/pol_901 are gone: an outside production write (pol_901) or a LOW-trust
    production read (pol_900) is now permitted.

    Should: a file that holds no policy list (empty, or a mapping without ``policies``
    or with keys other than ``version`` and ``policies``) is a validation error, and the
    worker refuses to start on it.
    """
    policies = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), policies)
    forbid = policies / "90-forbid.yaml"
    text = forbid.read_text()
    forbid.write_text(text.replace("\npolicies:", "\npolices:") if damage == "misspelled" else "")
    assert validate_policies(policies) != []


@pytest.mark.parametrize("action", ["scale", "restart"])
def test_shipped_policies_forbid_mutating_production_k8s_from_outside(action: str) -> None:
    """Threat: a stolen SRE session (or a forged record) on the internet scales the
    production cluster to zero or restarts it.

    Steps: the packaged policies; an ``sre`` with MFA on a compliant device, from
    203.0.113.9 (outside every internal network), asks to ``scale``/``restart``
    ``k8s/production/cluster-1``.

    Happens: ALLOW by pol_004.  pol_901 "No Production Writes From Outside" lists
    ``write, delete, admin, deploy`` only, so ``deploy`` from outside is denied while
    ``scale`` and ``restart`` (as disruptive) pass (``agents/trust/policies/90-forbid.yaml``).

    Should: every mutating action pol_004 grants on production (deploy, restart, scale)
    is forbidden from outside, as deploy is.
    """
    decision = engine().decide(request(action=action), UserBehaviour())
    assert decision.decision is Verdict.DENY


def test_shipped_policies_follow_the_configured_internal_networks() -> None:
    """Threat: the operator narrows the internal networks to the corporate range
    (``DHARMA_TRUST_INTERNAL_NETWORKS=10.20.0.0/16``), e.g. because 192.168.0.0/16 is
    every home router behind the VPN's split tunnel or a partner's NAT.

    Steps: engine configured with internal networks ``10.20.0.0/16``; an admin with MFA
    on a compliant device writes ``database/production/customer_db`` from 192.168.1.5.

    Happens: the engine scores the address as external (no internal bonus), yet the
    request is ALLOWed by pol_001: pol_901's ``outside_networks`` (and pol_002/pol_003's
    ``allowed_networks``) are literal RFC 1918 lists in the YAML, so 192.168.1.5 counts
    as inside for the forbid.  Item 8 made the networks configuration; the policies
    did not follow.

    Should: a production write from an address the configuration calls external is
    forbidden (e.g. a ``when: {outside_internal: true}`` predicate bound to
    ``TrustConfig.internal_networks``, used by the shipped policies).
    """
    config = TrustConfig(internal_networks=("10.20.0.0/16",))
    decision = engine(config).decide(
        request(roles=["admin"], resource="database/production/customer_db", action="write",
                source_ip="192.168.1.5"), UserBehaviour())
    assert decision.scores is not None and not decision.scores.internal
    assert decision.decision is Verdict.DENY


def test_business_hours_are_judged_at_the_deciding_clock() -> None:
    """Threat: a DBA wants a ``delete`` on a production database after hours; pol_002
    allows it only in business hours (and at FULL trust, which the business-hours bonus
    makes reachable).

    Steps: the worker's clock says Monday 18:10 (UTC, the default zone); the request is
    dated 17:59, eleven minutes earlier -- inside ``DHARMA_TRUST_MAX_REQUEST_AGE_S``
    (900 s), so it is not ``stale_request``.

    Happens: ALLOW by pol_002 (93.75, FULL, "business hours").  Item 4 bounded the
    request's time but the engine still reads business hours, recency and travel at
    ``event.ts`` (``scoring.score_event``), so every after-hours rule is extended by the
    freshness window for whoever picks the timestamp (at 18:10 the same request scores
    88.75, HIGH, and is DENYed).

    Should: the facts of *when* a request happens (business hours) are judged at the
    deciding clock (``now_ms``) when there is one, or at the later of the two.
    """
    now = int(datetime(2025, 12, 8, 18, 10, tzinfo=UTC).timestamp()) * MS
    ts = now - 11 * 60 * MS
    decision = engine().decide(
        request(roles=["dba"], resource="database/production/customer_db", action="delete",
                source_ip="10.0.0.5", ts=ts, last_auth_ts=ts - 60 * MS),
        UserBehaviour(score=100), now_ms=now)
    assert decision.decision is Verdict.DENY


@pytest.mark.parametrize("resource", ["metrics/prod/db", "dashboards/eu/production/payments"])
def test_low_trust_production_reads_are_forbidden_wherever_production_appears(
        resource: str) -> None:
    """Threat: a LOW-trust identity (a viewer on an unmanaged laptop, no MFA, from outside,
    at night: 41 points) reads production monitoring data.

    Steps: the packaged policies; such a viewer reads ``metrics/production/db`` (the
    reference case), then ``metrics/prod/db`` and ``dashboards/eu/production/payments``.

    Happens: the first is DENYed by pol_900; the other two are ALLOWed by pol_011 (LOW),
    although the engine itself scores both as production (``TrustConfig.
    production_segments`` = ``production``, ``prod``: context -10).  pol_900's glob
    ``*/production/**`` matches ``production`` as the second segment only.

    Should: the guard rail covers what the engine calls production: every resource with
    a production segment (any position, ``prod`` included) needs MEDIUM or more (e.g. a
    ``when: {production: true}`` predicate instead of a path glob).
    """
    night = int(datetime(2025, 12, 8, 23, 0, tzinfo=UTC).timestamp()) * MS
    unmanaged = {"device_id": "laptop", "os": "Windows 11", "encrypted": True,
                 "firewall": False, "antivirus": False, "compliance_score": 0.0,
                 "patch_level": "unknown"}
    viewer = request(roles=["viewer"], action="read", mfa_enabled=False, ts=night,
                     last_auth_ts=night - 3600 * MS, device=unmanaged)
    reference = engine().decide(dict(viewer, resource="metrics/production/db"), UserBehaviour())
    assert reference.decision is Verdict.DENY
    decision = engine().decide(dict(viewer, resource=resource), UserBehaviour())
    assert decision.scores is not None and decision.scores.production
    assert decision.decision is Verdict.DENY
