"""``dharma cmdb``: the questions, reconciliation and rebuild, against the session's stack.

Data flows through Kafka: the generator or the tests produce ``infrastructure.events``,
a ``cmdb`` worker applies them, the CLI (``CliRunner``, the session's settings) asks.
The graph is shared by every test of the session, so each test's assets and sources
carry a uuid prefix; the generator's estate has fixed ids (``db-primary-01``...), which
no other test writes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner, Result

from dharma.cli import app
from dharma.sinks.graph import Graph, connect
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.synthetic import EstateConfig, build_estate

pytestmark = pytest.mark.integration

runner = CliRunner()
FIELDS = ("resource_id", "asset_type", "name", "provider", "region", "team", "env",
          "instance_type", "hourly_cost")


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def cli_json(*args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def graph(settings: Any) -> Iterator[Graph]:
    client = connect(settings.graph.uri)
    yield client
    asyncio.run(client.close())


@pytest.fixture
def prefix() -> str:
    return f"c{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def producer(settings: Any) -> AvroProducer:
    return AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))


def node(graph: Graph, resource_id: str) -> dict[str, Any] | None:
    rows = graph.query_sync("MATCH (a:Asset {id: $id}) RETURN properties(a) AS a", id=resource_id)
    return dict(rows[0]["a"]) if rows else None


def asset(resource_id: str, team: str = "ops", **extra: Any) -> dict[str, Any]:
    return {"resource_id": resource_id, "asset_type": "app", "name": resource_id,
            "provider": "aws", "region": "eu-west-1", "team": team, "env": "prod", **extra}


def asset_event(resource_id: str, ts: int, action: str = "created", **attrs: Any) -> dict[str, Any]:
    body = {k: v for k, v in asset(resource_id, **attrs).items() if k != "resource_id"}
    return {"event_id": uuid.uuid4().hex, "ts": ts, "type": "asset", "resource_id": resource_id,
            "attributes": {"action": action, "instance_type": None, "hourly_cost": None, **body}}


def edge_event(source: str, target: str, ts: int, relation: str = "DEPENDS_ON") -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "type": "dependency", "resource_id": source,
            "attributes": {"target_id": target, "relation": relation, "action": "added"}}


def send(producer: AvroProducer, events: list[dict[str, Any]]) -> None:
    for event in events:
        producer.produce("infrastructure.events", event["resource_id"], event)
    assert producer.flush() == 0


def write_inventory(path: Path, assets: list[dict[str, Any]], **extra: Any) -> Path:
    path.write_text(json.dumps({"assets": assets, **extra} if extra else assets))
    return path


def syncs_of(settings: Any, source: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        return conn.execute("SELECT tag, rows, partial, status, stale_marked FROM cmdb_syncs "
                            "WHERE source = %s ORDER BY tag", (source,)).fetchall()


# --- the generator's estate ---------------------------------------------------------------


def test_generated_estate_and_its_database_blast_radius(
        start_worker: Callable[..., Any], poll: Callable[..., Any], tmp_path: Path) -> None:
    start_worker("cmdb")
    seed = uuid.uuid4().int % 100_000  # event ids of its own, whatever ran before
    generated = cli("generate", "--rate", "200", "--duration", "1", "--seed", str(seed),
                    "--quiet", "--labels-dir", str(tmp_path))
    assert generated.exit_code == 0, generated.output
    estate = build_estate(EstateConfig())
    above_db = {r.resource_id for r in estate if ("db-primary-01", "DEPENDS_ON") in r.depends_on}
    above_apps = {r.resource_id for r in estate if r.asset_type == "web"}
    expected = {"resource_id": "db-primary-01",
                "impacted": [{"id": i, "depth": 1} for i in sorted(above_db)]
                + [{"id": i, "depth": 2} for i in sorted(above_apps)]}
    poll(lambda: cli_json("cmdb", "blast-radius", "db-primary-01") == expected,
         "the generated estate's database impacts its app and web servers",
         describe=lambda: cli("cmdb", "blast-radius", "db-primary-01", "--json").output)
    assert cli_json("cmdb", "blast-radius", "db-primary-01", "--depth", "1") == {
        **expected, "impacted": expected["impacted"][:len(above_db)]}
    shown = cli_json("cmdb", "show", "db-primary-01")
    assert shown["asset"]["asset_type"] == "db" and shown["asset"]["status"] == "live"
    assert {c["kind"] for c in shown["changes"]} == {"asset"}
    stats = cli_json("cmdb", "stats")
    assert stats["by_type"]["web"] >= len(above_apps)


# --- questions: show, path, stats, unknown ids ----------------------------------------------


def test_show_at_path_and_unknown_ids(start_worker: Callable[..., Any], producer: AvroProducer,
                                      poll: Callable[..., Any], prefix: str,
                                      graph: Graph) -> None:
    start_worker("cmdb")
    web, api, db = (f"{prefix}{n}" for n in ("web", "api", "db"))
    send(producer, [asset_event(db, 1_000, team="data"), asset_event(api, 1_000),
                    asset_event(web, 1_000), edge_event(web, api, 2_000),
                    edge_event(api, db, 2_000, "RUNS_ON"),
                    asset_event(db, 5_000, "updated", team="platform")])
    poll(lambda: (node(graph, db) or {}).get("team") == "platform"
         and cli("cmdb", "path", web, db).exit_code == 0, "the events applied")
    assert cli_json("cmdb", "path", web, db) == {"source": web, "target": db, "path": [
        {"source": web, "relation": "DEPENDS_ON", "target": api},
        {"source": api, "relation": "RUNS_ON", "target": db}]}
    before_edges = cli("cmdb", "path", web, db, "--at", "1500", "--json")
    assert before_edges.exit_code == 1 and json.loads(before_edges.stdout)["path"] is None
    assert cli("cmdb", "path", db, web).exit_code == 1  # dependencies point one way

    then = cli_json("cmdb", "show", db, "--at", "1970-01-01T00:00:04Z")
    assert (then["asset"]["team"], then["asset"]["status"], then["at"]) == ("data", "live", 4000)
    assert [c["ts"] for c in then["changes"]] == [1_000]
    now = cli_json("cmdb", "show", db, "--changes", "1")
    assert now["asset"]["team"] == "platform" and len(now["changes"]) == 1
    assert cli("cmdb", "show", db, "--at", "999").exit_code == 1  # not created yet

    missing = f"{prefix}missing"
    for args in (["show", missing], ["blast-radius", missing], ["path", web, missing]):
        result = cli("cmdb", *args, "--json")
        assert result.exit_code == 1 and missing in result.output, result.output
    assert cli("cmdb", "stats", "--at", "yesterday").exit_code == 2  # a clear usage error


# --- reconciliation ---------------------------------------------------------------------------


def test_complete_sync_marks_the_unseen_stale_and_a_later_sync_clears_it(
        settings: Any, graph: Graph, prefix: str, tmp_path: Path) -> None:
    source, other = f"{prefix}scan", f"{prefix}other"
    a, b, c, x = (f"{prefix}{n}" for n in "abcx")
    inv = tmp_path / "inv.json"
    assert cli("cmdb", "sync", str(write_inventory(tmp_path / "x.json", [asset(x)])),
               "--source", other).exit_code == 0
    first = cli_json("cmdb", "sync", str(write_inventory(inv, [asset(a), asset(b), asset(c)])),
                     "--source", source)
    assert (first["assets"], first["created"], first["stale_marked"]) == (3, 3, 0)

    second = cli_json("cmdb", "sync", str(write_inventory(inv, [asset(a), asset(b)])),
                      "--source", source)
    assert second["stale_marked"] == 1 and second["tag"] > first["tag"]
    stale = node(graph, c)
    assert stale is not None and stale["stale"] is True and stale["stale_since"] == second["tag"]
    assert node(graph, a)["stale"] is False  # type: ignore[index]
    assert node(graph, x)["stale"] is False and node(graph, x)["source"] == other  # type: ignore[index]

    third = cli_json("cmdb", "sync", str(write_inventory(inv, [asset(a), asset(b), asset(c)])),
                     "--source", source)
    assert third["stale_marked"] == 0
    assert node(graph, c)["stale"] is False and "stale_since" not in node(graph, c)  # type: ignore[index,operator]
    listed = cli_json("cmdb", "syncs", "--source", source)  # newest first
    assert [(s["tag"], s["status"], s["stale_marked"], s["rows"]) for s in listed] == [
        (third["tag"], "complete", 0, 3), (second["tag"], "complete", 1, 2),
        (first["tag"], "complete", 0, 3)]
    assert cli("cmdb", "syncs").exit_code == 0


def test_a_bad_row_changes_nothing_and_a_partial_sync_marks_nothing_stale(
        settings: Any, graph: Graph, prefix: str, tmp_path: Path) -> None:
    source = f"{prefix}scan"
    a, b, c = (f"{prefix}{n}" for n in "abc")
    assert cli("cmdb", "sync", str(write_inventory(tmp_path / "1.json", [asset(a), asset(b)])),
               "--source", source).exit_code == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(FIELDS) + "\n"
                   + "\n".join(",".join(str(v) for v in asset(i, instance_type="m5",
                                                               hourly_cost=cost).values())
                               for i, cost in ((c, "0.1"), (a, "lots"))) + "\n")
    result = cli("cmdb", "sync", str(bad), "--source", source)
    assert result.exit_code == 1
    assert "asset 2" in result.output and "hourly_cost" in result.output, result.output
    truncated = tmp_path / "cut.json"
    truncated.write_text(json.dumps([asset(c), asset(a)])[:-30])
    assert cli("cmdb", "sync", str(truncated), "--source", source).exit_code == 1
    assert node(graph, c) is None and node(graph, b)["stale"] is False  # type: ignore[index]
    assert len(syncs_of(settings, source)) == 1

    partial = cli_json("cmdb", "sync", str(write_inventory(tmp_path / "2.json", [asset(c)])),
                       "--source", source, "--partial")
    assert partial["stale_marked"] == 0 and partial["partial"] is True
    assert node(graph, a)["stale"] is False and node(graph, c)["source"] == source  # type: ignore[index]


def test_synced_assets_reach_the_graph_through_the_worker(
        start_worker: Callable[..., Any], settings: Any, graph: Graph, poll: Callable[..., Any],
        prefix: str, tmp_path: Path) -> None:
    start_worker("cmdb")
    source, a, b = f"{prefix}scan", f"{prefix}a", f"{prefix}b"
    inventory = {"assets": [asset(a, hourly_cost=0.5), asset(b)],
                 "dependencies": [{"resource_id": a, "target_id": b, "relation": "RUNS_ON"}]}
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(inventory))
    cli_json("cmdb", "sync", str(path), "--source", source)
    poll(lambda: (node(graph, a) or {}).get("status") == "live", "the synced asset applied")
    assert cli_json("cmdb", "blast-radius", b)["impacted"] == [{"id": a, "depth": 1}]
    assert node(graph, a)["hourly_cost"] == 0.5  # type: ignore[index]
    inventory["assets"][0]["team"] = "payments"
    path.write_text(json.dumps(inventory))
    assert cli_json("cmdb", "sync", str(path), "--source", source)["created"] == 0
    poll(lambda: (node(graph, a) or {}).get("team") == "payments", "the update applied")
    actions = [c["action"] for c in cli_json("cmdb", "show", a)["changes"] if c["kind"] == "asset"]
    assert actions == ["updated", "created"]


def test_an_older_sync_finishing_late_changes_nothing_a_newer_one_decided(
        graph: Graph, prefix: str) -> None:
    from dharma.sinks.cmdb_sync import GraphSync

    sync, source, a, b = GraphSync(graph), f"{prefix}scan", f"{prefix}a", f"{prefix}b"

    async def run() -> None:
        await sync.mark_seen(source, 100, [a, b])
        await sync.mark_seen(source, 300, [a])  # the newer sync: b is not there
        assert await sync.mark_stale(source, 300) == 1
        assert await sync.mark_seen(source, 200, [a, b]) == 0  # the older one, late
        assert await sync.mark_stale(source, 200) == 0

    asyncio.run(run())
    assert (node(graph, a)["sync_tag"], node(graph, a)["stale"]) == (300, False)  # type: ignore[index]
    assert (node(graph, b)["sync_tag"], node(graph, b)["stale"]) == (100, True)  # type: ignore[index]
    assert node(graph, b)["status"] == "placeholder"  # type: ignore[index]  # never described


def test_an_injected_id_is_a_plain_id(graph: Graph, prefix: str, tmp_path: Path) -> None:
    source, keep = f"{prefix}scan", f"{prefix}keep"
    hostile = f"{prefix}x}}) DETACH DELETE n // [/bold]"  # Cypher, and rich markup
    csv_file = tmp_path / "evil.csv"
    csv_file.write_text(",".join(FIELDS) + "\n" + "\n".join(
        ",".join(f'"{v}"' if v is not None else "" for v in {
            **dict.fromkeys(FIELDS), **asset(i)}.values()) for i in (keep, hostile)) + "\n")
    assert cli("cmdb", "sync", str(csv_file), "--source", source).exit_code == 0
    assert node(graph, hostile)["source"] == source  # type: ignore[index]
    assert node(graph, keep) is not None
    assert cli("cmdb", "show", hostile, "--json").exit_code == 0
    shown = cli("cmdb", "show", hostile)
    assert shown.exit_code == 0 and "[/bold]" in shown.output, shown.output


def test_a_sync_interrupted_half_way_marks_nothing_stale(
        settings: Any, graph: Graph, prefix: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from dharma.agents.cmdb.inventory import Inventory, InventoryAsset
    from dharma.cli.cmdb import cmdb_graph
    from dharma.cli.cmdb_sync import run_sync
    from dharma.sinks import cmdb_sync

    source = f"{prefix}scan"
    ids = [f"{prefix}{i}" for i in range(6)]
    full = Inventory(assets=[InventoryAsset(**asset(i)) for i in ids])
    run_sync(settings, full, source, partial=False)
    pages = 0
    client_class = type(cmdb_graph(settings))  # the transport the sync goes through
    real_query = client_class.query

    async def query_then_interrupt(self: Any, cypher: str, **params: Any) -> Any:
        nonlocal pages
        if "sync_tag <= $tag" in cypher:  # tagging the seen assets, page by page
            pages += 1
            if pages == 2:
                raise KeyboardInterrupt
        return await real_query(self, cypher, **params)

    monkeypatch.setattr(cmdb_sync, "PAGE", 2)
    monkeypatch.setattr(client_class, "query", query_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_sync(settings, Inventory(assets=full.assets[:4]), source, partial=False)
    monkeypatch.undo()
    assert not any(node(graph, i)["stale"] for i in ids)  # type: ignore[index]
    assert [s[3] for s in syncs_of(settings, source)] == ["complete", "failed"]
    report = run_sync(settings, Inventory(assets=full.assets[:4]), source, partial=False)
    assert report.stale_marked == 2
    assert [node(graph, i)["stale"] for i in ids] == [False] * 4 + [True] * 2  # type: ignore[index]


# --- rebuild --------------------------------------------------------------------------------


def test_rebuild_restores_a_lost_node_from_the_history(
        start_worker: Callable[..., Any], producer: AvroProducer, graph: Graph,
        poll: Callable[..., Any], prefix: str) -> None:
    worker = start_worker("cmdb")
    a, b = f"{prefix}a", f"{prefix}b"
    send(producer, [asset_event(a, 1_000), asset_event(b, 1_000), edge_event(a, b, 2_000)])
    poll(lambda: cli_json("cmdb", "blast-radius", b)["impacted"] == [{"id": a, "depth": 1}],
         "the edge applied")
    worker.stop()
    before = node(graph, a)
    graph.query_sync("MATCH (n:Asset {id: $id}) DETACH DELETE n", id=a)  # a graph restored badly
    rebuilt = cli("cmdb", "rebuild", "--page", "7")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert node(graph, a) == before
    assert cli_json("cmdb", "blast-radius", b)["impacted"] == [{"id": a, "depth": 1}]
    assert cli("cmdb", "rebuild").exit_code == 0 and node(graph, a) == before  # idempotent
