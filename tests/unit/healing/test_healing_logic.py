"""The pure decisions of self-healing: each guard as a rule, the root cause, ids and
the verification window."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.healing.logic import (
    RESTART,
    Limits,
    Situation,
    decide,
    incident_id,
    remediation_id,
    root_cause,
    verify,
)

HEALTHY = Situation(now=10_000_000, members=10, unhealthy=1)
LIMITS = Limits()


@pytest.mark.parametrize(("situation", "status", "guard"), [
    (HEALTHY, "requested", None),
    (replace(HEALTHY, unhealthy=5), "skipped", "circuit_breaker"),
    (replace(HEALTHY, unhealthy=4), "requested", None),  # 40 % is not more than 40 %
    (replace(HEALTHY, members=2, unhealthy=1), "requested", None),  # one sick member
    (replace(HEALTHY, chaos="exp-1"), "skipped", "chaos_experiment"),
    (replace(HEALTHY, paused=True), "deferred", "paused"),
    (replace(HEALTHY, deployment="dep-1"), "deferred", "deployment"),
    (replace(HEALTHY, last_remediated=10_000_000 - 29 * 60_000), "skipped", "cooldown"),
    (replace(HEALTHY, last_remediated=10_000_000 - 31 * 60_000), "requested", None),
    (replace(HEALTHY, last_remediated=10_000_000 - 60_000, retry=True), "requested", None),
    (replace(HEALTHY, requested=3), "skipped", "rate_limit"),
    (replace(HEALTHY, requested=2), "requested", None),
])
def test_each_guard_is_a_rule(situation: Situation, status: str, guard: str | None) -> None:
    verdict = decide(RESTART, situation, LIMITS)
    assert (verdict.status, verdict.guard) == (status, guard)


def test_the_breaker_and_chaos_outrank_the_guards_that_only_wait() -> None:
    everything = replace(HEALTHY, unhealthy=9, chaos="exp", paused=True, deployment="dep")
    assert decide(RESTART, everything, LIMITS).guard == "circuit_breaker"
    assert decide(RESTART, replace(everything, unhealthy=1), LIMITS).guard == "chaos_experiment"


def test_approval_holds_until_given_and_dry_run_never_requests() -> None:
    gated = replace(RESTART, needs_approval=True)  # type: ignore[type-var]
    assert decide(gated, HEALTHY, LIMITS).status == "awaiting_approval"
    assert decide(gated, replace(HEALTHY, approved=True), LIMITS).status == "requested"
    dry = Limits(dry_run=True)
    for playbook in (RESTART, gated):
        verdict = decide(playbook, replace(HEALTHY, approved=True), dry)
        assert (verdict.status, verdict.guard) == ("skipped", "dry_run")
    assert "would restart_service" in decide(RESTART, HEALTHY, dry).reason


def test_no_playbook_is_a_published_skip() -> None:
    assert (decide(None, HEALTHY, LIMITS).status, decide(None, HEALTHY, LIMITS).guard) == (
        "skipped", "no_playbook")


def test_ids_name_what_they_identify() -> None:
    assert incident_id("fp", 1) == incident_id("fp", 1) != incident_id("fp", 2)
    first = remediation_id("inc-1", "restart-service@1", 1)
    assert first == remediation_id("inc-1", "restart-service@1", 1)
    assert len({first, remediation_id("inc-1", "restart-service@1", 2),
                remediation_id("inc-1", "restart-service@1", 1, "rollback"),
                remediation_id("inc-2", "restart-service@1", 1)}) == 4


def test_the_root_is_the_deepest_alerting_dependency() -> None:
    chain = {"web": frozenset({"api", "db", "disk"}), "api": frozenset({"db", "disk"}),
             "db": frozenset({"disk"})}
    assert root_cause(chain) == ("db", ["api", "web"])  # disk is not alerting
    shared = {"db": frozenset(), "a": frozenset({"db"}), "b": frozenset({"db"})}
    assert root_cause(shared) == ("db", ["a", "b"])
    unrelated = {"x": frozenset(), "y": frozenset(), "z": frozenset({"y"})}
    assert root_cause(unrelated) == ("y", ["x", "z"])  # the one the others depend on most
    assert root_cause({"a": frozenset({"b"}), "b": frozenset({"a"})}) == ("a", ["b"])  # cycle


names = st.sampled_from([f"r{i}" for i in range(8)])


@given(st.dictionaries(names, st.frozensets(names, max_size=5), min_size=1, max_size=8))
def test_the_root_never_depends_on_another_alerting_resource_unless_all_do(
        members: dict[str, frozenset[str]]) -> None:
    root, symptoms = root_cause(members)
    assert sorted([root, *symptoms]) == sorted(members)
    alerting = set(members)
    if any(not (deps & alerting) - {m} for m, deps in members.items()):
        assert not (members[root] & alerting) - {root}
    assert root_cause(dict(reversed(list(members.items())))) == (root, symptoms)


def test_verification_waits_for_the_window_and_judges_all_of_it() -> None:
    inside = [(0, 50.0), (60, 45.0)]
    assert verify(inside, "memory", 80, 0, 100, timed_out=False) is None
    assert verify([*inside, (100, 44.0)], "memory", 80, 0, 100, False) == (
        "passed", "memory under 80 for the window (max 50)")
    assert verify([*inside, (70, 80.0), (100, 44.0)], "memory", 80, 0, 100, False) == (
        "failed", "memory still at 80 (threshold 80)")
    assert verify([(-10, 99.0), (100, 44.0)], "memory", 80, 0, 100, False) == (
        "passed", "memory under 80 for the window (max 44)")
    assert verify([], "memory", 80, 0, 100, timed_out=True) == (
        "failed", "no memory samples in the window")
