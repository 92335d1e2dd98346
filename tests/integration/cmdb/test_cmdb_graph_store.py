"""The graph store itself: ids are data whatever they hold, and a write never replaces
a state that comes from a longer history."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from dharma.agents.cmdb.logic import Change, project_histories
from dharma.agents.cmdb.state import graph_rows
from dharma.sinks.cmdb import Cmdb
from dharma.sinks.graph import GraphSink, connect

pytestmark = pytest.mark.integration

HOSTILE = ['a"}) DETACH DELETE n //', "b\\", "c'\n) MATCH (m) DELETE m", "d`$rows`",
           "ünïcødé 🚀", "e} , x: 1 {"]


@pytest.fixture
def graph(settings: Any) -> Any:
    """A graph of its own (graph names are free on FalkorDB)."""
    return connect(settings.graph.uri.rsplit("/", 1)[0] + f"/t-{uuid.uuid4().hex[:8]}")


def asset(rid: str, event_id: str, ts: int, team: str = "t") -> Change:
    return Change(event_id, ts, "asset", rid, "created",
                  {"asset_type": "app", "name": rid, "provider": "aws", "region": "r",
                   "team": team, "env": "prod", "instance_type": None, "hourly_cost": None})


def test_hostile_ids_are_stored_and_found_as_they_are(graph: Any) -> None:
    changes = [asset(rid, f"e{i}", 1000 + i) for i, rid in enumerate(HOSTILE)]
    changes.append(Change("e-edge", 2000, "dependency", HOSTILE[0], "added",
                          {"target_id": HOSTILE[1], "relation": "DEPENDS_ON"}))
    assets, edges = project_histories({c.key: [c] for c in changes})

    async def run() -> Any:
        await GraphSink(graph).flush([graph_rows(assets, edges)])
        return await Cmdb(graph).blast_radius(HOSTILE[1])

    radius = asyncio.run(run())
    assert [i.id for i in radius.impacted] == [HOSTILE[0]]
    stored = graph.query_sync("MATCH (a:Asset) RETURN a.id AS id ORDER BY id")
    assert sorted(r["id"] for r in stored) == sorted(HOSTILE)


def test_a_shorter_history_never_replaces_a_longer_one(graph: Any) -> None:
    first = asset("db", "e1", 1000, team="old")
    later = asset("db", "e2", 2000, team="new")
    sink = GraphSink(graph)

    async def write(*changes: Change) -> None:
        assets, edges = project_histories({"db": list(changes)})
        await sink.flush([graph_rows(assets, edges)])

    asyncio.run(write(first, later))
    asyncio.run(write(first))            # a worker that lost the partition, still writing
    node = graph.query_sync("MATCH (a:Asset {id: 'db'}) RETURN properties(a) AS p")[0]["p"]
    assert (node["team"], node["changed_by"], node["changes"]) == ("new", "e2", 2)
