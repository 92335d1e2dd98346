"""The CMDB bench's generated estate: exact sizes, seeded, five layers deep, valid events."""

from __future__ import annotations

import json

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from dharma.agents.cmdb.logic import to_change
from dharma.bench.cmdb_estate import Estate
from dharma.bench.cmdb_queries import ROOT_WEIGHTS, pick_roots
from dharma.schemas import schema_text


@settings(max_examples=15, deadline=None)
@given(assets=st.integers(200, 800), seed=st.integers(0, 1000))
def test_estate_has_exactly_the_sizes_asked_and_is_seeded(assets: int, seed: int) -> None:
    estate = Estate.generate(assets=assets, edges=3 * assets, seed=seed, prefix="p-")
    assert len(set(estate.assets)) == assets
    assert len(set(estate.edges)) == len(estate.edges) == 3 * assets
    assert estate == Estate.generate(assets=assets, edges=3 * assets, seed=seed, prefix="p-")
    assert estate.depth_reached == 5  # host <- db <- svc <- api <- web <- lb


def test_every_event_is_a_valid_cmdb_change_of_the_contract() -> None:
    estate = Estate.generate(assets=300, edges=900, seed=2, prefix="v-")
    schema = fastavro.parse_schema(json.loads(schema_text("infrastructure.events-value")))
    events = estate.events()
    changes = [to_change(event) for event in events]
    assert all(fastavro.validate(event, schema) for event in events)
    assert all(c is not None for c in changes)
    assert len({e["event_id"] for e in events}) == len(events)
    churn = [e for e in events if e["ts"] >= estate.built_at]
    actions = {e["attributes"]["action"] for e in churn}
    assert actions == {"updated", "retired", "removed"}
    assert len(events) == 300 + 900 + len(churn)


def test_roots_lean_on_the_low_layers_and_are_never_retired() -> None:
    estate = Estate.generate(assets=1000, edges=3000, prefix="r-")
    roots = pick_roots(estate, 500)
    assert not set(roots) & set(estate.retired)
    low = sum(1 for r in roots if r.split("-")[1] in ("host", "db", "cache", "queue"))
    expected = sum(ROOT_WEIGHTS[k] for k in ("host", "db", "cache", "queue"))
    assert abs(low / len(roots) - expected) < 0.1
    assert not any(r.split("-")[1] == "lb" for r in roots)  # nothing depends on a balancer
