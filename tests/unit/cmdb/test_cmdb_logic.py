"""The CMDB's batch step: a state is a function of the set of its changes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.cmdb.logic import (
    OPEN,
    AssetState,
    Change,
    EdgeState,
    edge_key,
    project,
    project_histories,
    to_change,
)
from dharma.streams.errors import ContractViolation

ATTRS = {"asset_type": "db", "name": "db-1", "provider": "aws", "region": "eu-west-1",
         "team": "data", "env": "prod", "instance_type": "r5.large", "hourly_cost": 0.25}


def asset_event(action: str, ts: int, event_id: str = "e1", **attrs: Any) -> dict[str, Any]:
    return {"event_id": event_id, "ts": ts, "type": "asset", "resource_id": "db-1",
            "attributes": {"action": action, **ATTRS, **attrs}}


def edge_event(action: str, ts: int, event_id: str = "e1") -> dict[str, Any]:
    return {"event_id": event_id, "ts": ts, "type": "dependency", "resource_id": "app-1",
            "attributes": {"target_id": "db-1", "relation": "DEPENDS_ON", "action": action}}


def test_an_asset_event_is_a_change_of_its_asset() -> None:
    change = to_change(asset_event("created", 1000))
    assert change == Change("e1", 1000, "asset", "db-1", "created", ATTRS)
    assert change.key == "db-1"


def test_a_dependency_event_is_a_change_of_its_edge() -> None:
    change = to_change(edge_event("added", 1000))
    assert change is not None
    assert change.key == edge_key("app-1", "DEPENDS_ON", "db-1")
    assert change.attributes == {"target_id": "db-1", "relation": "DEPENDS_ON"}


def test_other_event_types_are_not_the_cmdbs() -> None:
    deployment = {"event_id": "e1", "ts": 1, "type": "deployment", "resource_id": "x",
                  "attributes": {"deployment_id": "d"}}
    assert to_change(deployment) is None


@pytest.mark.parametrize("raw", [
    {**asset_event("created", 1), "type": "dependency"},     # attributes of another type
    {**edge_event("added", 1), "type": "asset"},
    {**edge_event("added", 1), "resource_id": "db-1"},       # an asset depending on itself
    asset_event("created", 1, hourly_cost=float("nan")),
    asset_event("created", 1, hourly_cost=-0.5),
    {**asset_event("created", 1), "resource_id": ""},
    {**asset_event("created", 1), "resource_id": "db\u202e1"},   # a bidi override
    {**edge_event("added", 1), "attributes": {"target_id": "x" * 300,
                                              "relation": "DEPENDS_ON", "action": "added"}},
])
def test_attributes_that_do_not_match_the_type_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ContractViolation):
        to_change(raw)


def test_a_change_dated_beyond_the_workers_clock_is_refused() -> None:
    assert to_change(asset_event("updated", 10_000), latest=10_000) is not None
    with pytest.raises(ContractViolation, match="beyond the worker's clock"):
        to_change(asset_event("updated", 10_001), latest=10_000)


def test_retiring_closes_the_span_and_the_last_change_gives_the_attributes() -> None:
    created = to_change(asset_event("created", 1000, "e1", team="data"))
    updated = to_change(asset_event("updated", 2000, "e2", team="platform"))
    retired = to_change(asset_event("retired", 3000, "e3", team="platform"))
    state = project([c for c in (retired, updated, created) if c is not None])
    assert isinstance(state, AssetState)
    assert state.attributes["team"] == "platform"
    assert state.version.spans == (1000, 3000)
    assert (state.version.valid_from, state.version.valid_to) == (1000, 3000)
    assert state.row()["status"] == "retired"


def test_a_removed_edge_added_again_keeps_both_lifetimes() -> None:
    events = [edge_event("added", 10, "e1"), edge_event("removed", 20, "e2"),
              edge_event("added", 30, "e3")]
    state = project([c for e in events if (c := to_change(e)) is not None])
    assert isinstance(state, EdgeState)
    assert state.version.spans == (10, 20, 30, OPEN)
    assert [state.version.alive_at(t) for t in (9, 10, 19, 20, 29, 30, 10**12)] == \
        [False, True, True, False, False, True, True]
    assert state.version.live and state.version.valid_to is None


def test_ties_in_time_are_broken_by_event_id() -> None:
    a = to_change(asset_event("updated", 1000, "e-a", team="a"))
    b = to_change(asset_event("updated", 1000, "e-b", team="b"))
    assert a is not None and b is not None
    assert project([b, a]).version.changed_by == project([a, b]).version.changed_by == "e-b"


def test_an_asset_retired_before_it_was_ever_created_never_lived() -> None:
    retired = to_change(asset_event("retired", 1000))
    assert retired is not None
    version = project([retired]).version
    assert version.spans == () and not version.live and version.valid_to == 1000


# -- properties: any order, any duplicates, the same state ---------------------------------

IDS = ("a", "b", "c")

asset_changes = st.builds(
    lambda rid, action, ts, team: Change("", ts, "asset", rid, action, {**ATTRS, "team": team}),
    st.sampled_from(IDS), st.sampled_from(["created", "updated", "retired"]),
    st.integers(0, 50), st.sampled_from(["t1", "t2"]))
edge_changes = st.builds(
    lambda pair, relation, action, ts: Change("", ts, "dependency", pair[0], action,
                                              {"target_id": pair[1], "relation": relation}),
    st.sampled_from([("a", "b"), ("b", "c"), ("a", "c")]),
    st.sampled_from(["DEPENDS_ON", "RUNS_ON"]), st.sampled_from(["added", "removed"]),
    st.integers(0, 50))


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Change], list[Change]]:
    """A stream of changes with unique event ids, and the same stream shuffled with
    some changes repeated."""
    raw = draw(st.lists(st.one_of(asset_changes, edge_changes), min_size=1, max_size=30))
    ordered = [Change(f"e{i:03d}", c.ts, c.kind, c.resource_id, c.action, c.attributes)
               for i, c in enumerate(raw)]
    repeated = draw(st.lists(st.sampled_from(ordered), max_size=10))
    return ordered, draw(st.permutations(ordered + repeated))


def _by_key(changes: list[Change]) -> dict[str, list[Change]]:
    out: dict[str, list[Change]] = {}
    for c in changes:
        out.setdefault(c.key, []).append(c)
    return out


@given(streams())
def test_shuffled_and_repeated_changes_give_the_same_states(
        pair: tuple[list[Change], list[Change]]) -> None:
    ordered, shuffled = pair
    assert project_histories(_by_key(ordered)) == project_histories(_by_key(shuffled))


@given(streams(), st.integers(-1, 52))
def test_alive_at_is_what_the_last_change_before_then_says(
        pair: tuple[list[Change], list[Change]], at: int) -> None:
    ordered, _ = pair
    for changes in _by_key(ordered).values():
        before = sorted((c for c in changes if c.ts <= at), key=lambda c: c.order)
        expected = bool(before) and before[-1].action in ("created", "updated", "added")
        assert project(changes).version.alive_at(at) == expected
