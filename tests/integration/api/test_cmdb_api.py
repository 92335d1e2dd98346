"""``/api/v1/cmdb``: an estate written through the CMDB's own sinks (the graph, a graph
of this module's own, and the change history), read back as assets, a blast radius
drawn as a graph, and an asset's history."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dharma.agents.cmdb.logic import Change, project_histories
from dharma.agents.cmdb.state import graph_rows, row_of
from dharma.api.server import ApiServer
from dharma.sinks.asset_changes import AssetChangeSink
from dharma.sinks.graph import GraphSink, connect

pytestmark = pytest.mark.integration

T0 = 1_796_148_000_000


def _asset(tag: str, rid: str, n: int, asset_type: str, team: str,
           action: str = "created") -> Change:
    return Change(f"e-{tag}-{n}", T0 + n, "asset", f"{tag}-{rid}", action,
                  {"asset_type": asset_type, "name": f"{rid.upper()} node", "provider": "aws",
                   "region": "eu", "team": team, "env": "prod", "instance_type": None,
                   "hourly_cost": None})


def _edge(tag: str, source: str, relation: str, target: str, n: int) -> Change:
    return Change(f"e-{tag}-{n}", T0 + n, "dependency", f"{tag}-{source}", "added",
                  {"target_id": f"{tag}-{target}", "relation": relation})


def _estate(tag: str) -> list[Change]:
    """lb-1 → web-1 → db-1 ← api-1 (DEPENDS_ON), web-1 and db-1 RUNS_ON host-1; api-1
    also depends on cache-1, which no asset change describes (a placeholder); old-1 is
    retired; db-1 was updated twice after its creation."""
    return [
        _asset(tag, "db-1", 1, "database", "data"), _asset(tag, "web-1", 2, "app", "web"),
        _asset(tag, "api-1", 3, "app", "payments"), _asset(tag, "lb-1", 4, "lb", "web"),
        _asset(tag, "host-1", 5, "host", "infra"), _asset(tag, "old-1", 6, "app", "web"),
        _asset(tag, "old-1", 7, "app", "web", action="retired"),
        _edge(tag, "web-1", "DEPENDS_ON", "db-1", 8), _edge(tag, "api-1", "DEPENDS_ON", "db-1", 9),
        _edge(tag, "lb-1", "DEPENDS_ON", "web-1", 10),
        _edge(tag, "web-1", "RUNS_ON", "host-1", 11), _edge(tag, "db-1", "RUNS_ON", "host-1", 12),
        _edge(tag, "api-1", "DEPENDS_ON", "cache-1", 13),
        _asset(tag, "db-1", 14, "database", "data", action="updated"),
        _asset(tag, "db-1", 15, "database", "data", action="updated")]


@pytest.fixture(scope="module")
def estate(settings: Any) -> dict[str, Any]:
    tag = f"a{uuid.uuid4().hex[:6]}"
    changes = _estate(tag)
    by_key: dict[str, list[Change]] = {}
    for change in changes:
        by_key.setdefault(change.key, []).append(change)
    assets, edges = project_histories(by_key)
    graph_uri = settings.graph.uri.rsplit("/", 1)[0] + f"/api-{tag}"

    async def write() -> None:
        graph = connect(graph_uri)
        history = AssetChangeSink(settings.postgres.dsn.get_secret_value())
        await history.setup()
        try:
            await GraphSink(graph).flush([graph_rows(assets, edges)])
            await history.flush([row_of(c) for c in changes])
        finally:
            await graph.close()
            await history.close()

    asyncio.run(write())
    return {"tag": tag, "graph_uri": graph_uri}


@pytest.fixture(scope="module")
def api_server(settings: Any, estate: dict[str, Any]) -> Iterator[ApiServer]:
    """The API over this module's own graph."""
    own = settings.model_copy(deep=True)
    own.graph.uri = estate["graph_uri"]
    server = ApiServer(own, host="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()["items"]]


def test_assets_by_type_team_and_text(reader: httpx.Client, estate: dict[str, Any],
                                      walk: Any) -> None:
    t = estate["tag"]
    live = [f"{t}-{r}" for r in ("api-1", "db-1", "host-1", "lb-1", "web-1")]
    assert _ids(reader.get("/api/v1/cmdb/assets")) == live  # no placeholder, none retired
    assert _ids(reader.get("/api/v1/cmdb/assets", params={"type": "app"})) == [
        f"{t}-api-1", f"{t}-web-1"]
    assert _ids(reader.get("/api/v1/cmdb/assets", params={"team": "web"})) == [
        f"{t}-lb-1", f"{t}-web-1"]
    assert _ids(reader.get("/api/v1/cmdb/assets", params={"q": "DB-1 NO"})) == [f"{t}-db-1"]
    assert _ids(reader.get("/api/v1/cmdb/assets", params={"q": "') RETURN 1 //"})) == []
    for control in ("\x00", "db\n1", ""):  # a NUL reached the graph server as a syntax error
        assert reader.get("/api/v1/cmdb/assets", params={"q": control}).status_code == 422
    assert [a["id"] for a in walk(reader, "/api/v1/cmdb/assets", limit=2)] == live


def test_one_asset_and_an_unknown_one(reader: httpx.Client, estate: dict[str, Any]) -> None:
    t = estate["tag"]
    db = reader.get(f"/api/v1/cmdb/assets/{t}-db-1").json()
    assert (db["id"], db["asset_type"], db["team"], db["changes"]) == (
        f"{t}-db-1", "database", "data", 3)
    assert reader.get(f"/api/v1/cmdb/assets/{t}-old-1").json()["status"] == "retired"
    assert reader.get(f"/api/v1/cmdb/assets/{t}-nowhere").status_code == 404
    assert reader.get(f"/api/v1/cmdb/assets/{t}-nowhere/blast-radius").status_code == 404
    assert reader.get(f"/api/v1/cmdb/assets/{t}-nowhere/history").status_code == 404


def test_blast_radius_as_a_graph(reader: httpx.Client, estate: dict[str, Any]) -> None:
    t = estate["tag"]
    answer = reader.get(f"/api/v1/cmdb/assets/{t}-db-1/blast-radius", params={"depth": 5})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["root"] == f"{t}-db-1" and body["truncated"] is False
    assert [(n["id"], n["depth"]) for n in body["nodes"]] == [
        (f"{t}-db-1", 0), (f"{t}-api-1", 1), (f"{t}-web-1", 1), (f"{t}-lb-1", 2)]
    assert body["nodes"][1] == {"id": f"{t}-api-1", "type": "app", "name": "API-1 node",
                                "team": "payments", "depth": 1}
    assert body["edges"] == [
        {"source": f"{t}-api-1", "target": f"{t}-db-1", "type": "DEPENDS_ON"},
        {"source": f"{t}-lb-1", "target": f"{t}-web-1", "type": "DEPENDS_ON"},
        {"source": f"{t}-web-1", "target": f"{t}-db-1", "type": "DEPENDS_ON"}]
    one = reader.get(f"/api/v1/cmdb/assets/{t}-db-1/blast-radius", params={"depth": 1}).json()
    assert [n["id"] for n in one["nodes"]] == [f"{t}-db-1", f"{t}-api-1", f"{t}-web-1"]
    host = reader.get(f"/api/v1/cmdb/assets/{t}-host-1/blast-radius").json()
    assert [n["depth"] for n in host["nodes"]] == [0, 1, 1, 2, 2]  # db-1, web-1; api-1, lb-1
    for depth in ("0", "6", "-1", "1;2"):
        assert reader.get(f"/api/v1/cmdb/assets/{t}-db-1/blast-radius",
                          params={"depth": depth}).status_code == 422


def test_history_newest_first_page_by_page(reader: httpx.Client, estate: dict[str, Any],
                                           walk: Any) -> None:
    t = estate["tag"]
    events = [c["event_id"] for c in walk(reader, f"/api/v1/cmdb/assets/{t}-db-1/history",
                                          limit=2)]
    assert events == [f"e-{t}-{n}" for n in (15, 14, 12, 1)]  # its changes, its own edge's
    first = reader.get(f"/api/v1/cmdb/assets/{t}-db-1/history", params={"limit": 1}).json()
    assert first["items"][0]["action"] == "updated" and first["items"][0]["ts"] == T0 + 15
    moved = {"limit": 1, "cursor": first["next"]}
    assert reader.get(f"/api/v1/cmdb/assets/{t}-web-1/history", params=moved
                      ).status_code == 400  # a cursor of another asset's history
