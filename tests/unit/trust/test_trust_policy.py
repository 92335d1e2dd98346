"""Policy model, loading, validation, the glob trie and set versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dharma.agents.trust import (
    PolicyError,
    PolicySet,
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
