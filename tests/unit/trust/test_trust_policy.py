"""Policy model, loading, validation, the glob trie and set versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dharma.agents.trust import (
    PolicyError,
    PolicySet,
    TrustConfig,
    TrustEngine,
    UserBehaviour,
    Verdict,
    default_engine,
    default_policy_dir,
    load_policy_set,
    validate_policies,
)


def _set(*policies: dict[str, Any], version: str | None = None) -> PolicySet:
    return PolicySet.from_documents([{"policies": list(policies)}], version=version)


def _p(pid: str, resource: str, actions: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "name": pid,
        "resource": resource,
        "actions": ["read"] if actions is None else actions,
        **({"roles_any": ["admin"]} if kw.get("effect") != "forbid" else {}),
        **kw,
    }


def test_default_policies_load() -> None:
    policies = load_policy_set(default_policy_dir())
    pol = {cp.id: cp.policy for cp in policies.policies}["pol_001"]
    assert pol.name == "Production Database Access"
    assert pol.resources == ("database/production/*",)
    assert "read" in pol.actions
    assert pol.roles_any == ("admin", "dba")
    assert pol.min_trust_level == "HIGH"
    assert pol.conditions.mfa_required
    assert pol.conditions.min_device_compliance == 90
    assert any(cp.forbid for cp in policies.policies)
    assert policies.version.startswith("2025.12.1@")
    assert validate_policies(default_policy_dir()) == []


@pytest.mark.parametrize(
    ("glob", "resource", "hit"),
    [
        ("database/production/*", "database/production/customer_db", True),
        ("database/production/*", "database/production/a/b", False),
        ("database/production/*", "database/production", False),
        ("database/**", "database/production/a/b", True),
        ("database/**", "database", True),
        ("*/production/**", "k8s/production/ns/pod", True),
        ("*/production/**", "k8s/staging/ns", False),
        ("a/**/z", "a/b/c/z", True),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c", False),
        ("db/cust_*", "db/cust_42", True),
        ("db/cust_*", "db/order_42", False),
        ("db/a.b", "db/aXb", False),
    ],
)
def test_glob_matching(glob: str, resource: str, hit: bool) -> None:
    matched = _set(_p("p1", glob)).match(resource, "read")
    assert bool(matched) is hit


def test_actions_and_wildcard_action() -> None:
    ps = _set(_p("p1", "a/*", ["read"]), _p("p2", "a/*", ["*"]))
    assert [cp.id for cp in ps.match("a/x", "read")] == ["p1", "p2"]
    assert [cp.id for cp in ps.match("a/x", "write")] == ["p2"]


def test_most_specific_first() -> None:
    ps = _set(_p("broad", "**"), _p("mid", "a/*"), _p("exact", "a/b"))
    assert [cp.id for cp in ps.match("a/b", "read")] == ["exact", "mid", "broad"]


def test_version_is_content_hash() -> None:
    a = _set(_p("p1", "a/*"))
    assert a.version == _set(_p("p1", "a/*")).version
    assert a.version != _set(_p("p1", "a/**")).version
    assert _set(_p("p1", "a/*"), version="v7").version == "v7"


@pytest.mark.parametrize(
    "bad",
    [
        _p("p1", "a/../b"),
        _p("p1", "a/b c"),
        _p("p1", "a/'x'"),
        _p("p1", ""),
        _p("p1", "a/*", ["read"], min_trust_level="SUPER"),
        _p("p1", "a/*", ["read"], conditions={"allowed_networks": ["10.0.0.0/40"]}),
        _p("p1", "a/*", ["read"], conditions={"min_device_compliance": 120}),
        _p("p1", "a/*", ["read"], conditions={"mfa_requried": True}),
        _p("p1", "a/*", ["read"], effect="forbid", roles_any=["admin"]),
        _p("p1", "a/*", ["read"], when={"trust_below": "HIGH"}),
        _p("p1", "a/*", []),
        {"id": "p1", "name": "no resource", "actions": ["read"]},
    ],
)
def test_invalid_policies(bad: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        _set(bad)


def test_duplicate_ids() -> None:
    with pytest.raises(PolicyError, match="duplicate"):
        _set(_p("p1", "a/*"), _p("p1", "b/*"))


def test_validate_dir_reports(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "policies:\n  - {id: x, name: x, resource: 'a/../b', actions: [read]}\n"
    )
    errors = validate_policies(tmp_path)
    assert errors and "x" in errors[0]
    (tmp_path / "a.yaml").write_text("policies: [unclosed\n")
    assert validate_policies(tmp_path)
    assert validate_policies(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert validate_policies(empty)


def test_aliases_resource_and_required_roles() -> None:
    ps = _set(
        {"id": "p", "name": "p", "resource": "a/*", "actions": ["read"], "required_roles": ["x"]}
    )
    assert ps.policies[0].policy.roles_any == ("x",)


@pytest.mark.parametrize("spec", [{"roles_any": []}, {"min_trust_level": "NONE"}])
def test_a_permit_for_anyone_or_at_the_lowest_band_is_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(PolicyError, match=r"roles_any|NONE"):
        _set(_p("p", "x/*", **spec))


def test_shipped_permits_require_a_role_and_more_than_the_lowest_band() -> None:
    permits = [cp for cp in load_policy_set(default_policy_dir()).policies if not cp.forbid]
    assert permits
    for cp in permits:
        assert cp.roles and cp.min_level.name != "NONE", cp.id


@pytest.mark.parametrize("resource", ["dashboards/team/latency", "metrics/api/p99"])
def test_no_role_no_mfa_outside_on_a_bare_device_reads_nothing(
        seed: Callable[..., dict[str, Any]], resource: str) -> None:
    raw = seed(resource=resource, roles=[], mfa_enabled=False,
                    source_ip="198.51.100.20", device={"compliance_score": 0.0})
    raw["last_auth_ts"] = raw["ts"] - 7_200_000
    decision = default_engine().decide(raw, UserBehaviour())
    assert decision.decision is Verdict.DENY
    assert any(r.startswith("role:") for r in decision.reasons)


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty"),
    ("# all commented out\n", "empty"),
    ("version: '1'\npolicies:\n", "must be a list"),
    ("version: '1'\npolicies: []\n", "no policies"),
    ("version: '1'\npolices:\n  - {id: x, name: x, resource: a/*, actions: [read],"
     " roles_any: [admin]}\n", "unknown top-level key"),
    ("version: '1'\n", "no 'policies' list"),
    ("[]\n", "no policies"),
    ("just text\n", "must be a list"),
])
def test_a_policy_file_that_holds_no_policy_is_an_error(tmp_path: Path, text: str,
                                                        problem: str) -> None:
    """A misspelt key, a truncated or emptied file never drops its policies silently."""
    (tmp_path / "10-ok.yaml").write_text(
        "policies:\n  - {id: ok, name: ok, resource: a/*, actions: [read], roles_any: [x]}\n")
    (tmp_path / "90-forbid.yaml").write_text(text)
    errors = validate_policies(tmp_path)
    assert len(errors) == 1 and errors[0].startswith("90-forbid.yaml: ") and problem in errors[0]
    with pytest.raises(PolicyError):
        load_policy_set(tmp_path)


def _forbid(**when: Any) -> TrustEngine:
    return TrustEngine(PolicySet.from_documents([{"policies": [
        _p("permit", "**", ["*"], roles_any=["admin"], min_trust_level="LOW"),
        _p("forbid", "**", ["*"], effect="forbid", when=when)]}]),
        TrustConfig(internal_networks=("10.20.0.0/16",)))


@pytest.mark.parametrize(("when", "changes", "forbidden"), [
    ({"production": True}, {"resource": "metrics/eu/prod/db"}, True),
    ({"production": True}, {"resource": "a/b/c/production"}, True),
    ({"production": True}, {"resource": "metrics/eu/productions/db"}, False),
    ({"outside_internal_networks": True}, {"source_ip": "192.168.1.5"}, True),
    ({"outside_internal_networks": True}, {"source_ip": "10.20.3.4"}, False),
    ({"unless_actions_any": ["read"]}, {"action": "read"}, False),
    ({"unless_actions_any": ["read"]}, {"action": "restart"}, True),
])
def test_forbid_predicates_follow_the_engines_configuration(
        seed: Callable[..., dict[str, Any]], when: dict[str, Any], changes: dict[str, Any],
        forbidden: bool) -> None:
    """``production`` is the engine's own notion (any segment production or prod) and
    ``outside_internal_networks`` the configured networks: one definition for scores
    and guard rails."""
    decision = _forbid(**when).decide(seed(**changes), UserBehaviour(score=85))
    assert (decision.policy_id == "forbid") is forbidden, decision.reasons
    assert decision.decision is (Verdict.DENY if forbidden else Verdict.ALLOW)


def test_a_permit_may_require_the_configured_internal_networks(
        seed: Callable[..., dict[str, Any]]) -> None:
    engine = TrustEngine(PolicySet.from_documents([{"policies": [
        _p("p", "**", ["read"], min_trust_level="LOW",
           conditions={"internal_network_required": True})]}]),
        TrustConfig(internal_networks=("10.20.0.0/16",)))
    inside = engine.decide(seed(source_ip="10.20.0.7"), UserBehaviour(score=85))
    outside = engine.decide(seed(source_ip="10.0.1.50"), UserBehaviour(score=85))
    assert inside.decision is Verdict.ALLOW
    assert outside.decision is Verdict.DENY
    assert "condition: source IP not in the internal networks" in outside.reasons


@pytest.mark.parametrize("action", ["write", "delete", "admin", "deploy", "restart", "scale",
                                    "exec"])
@pytest.mark.parametrize("resource", ["database/production/customer_db",
                                      "k8s/production/cluster-1", "secrets/production/key",
                                      "infra/prod/host-1"])
def test_shipped_policies_forbid_every_production_change_from_outside(
        seed: Callable[..., dict[str, Any]], action: str, resource: str) -> None:
    raw = seed(roles=["admin", "dba", "sre", "ops"], resource=resource, action=action,
               source_ip="203.0.113.9")
    decision = default_engine().decide(raw, UserBehaviour(score=100))
    assert (decision.decision, decision.policy_id) == (Verdict.DENY, "pol_901")
