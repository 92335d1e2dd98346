"""The CMDB through Kafka into the embedded graph (FalkorDB) and PostgreSQL.

Each stream writes assets under its own id prefix (one graph serves the session), and
its graph is compared with what the capability's batch step makes of the same events.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dharma.agents.cmdb.logic import project_histories, to_change
from dharma.sinks.cmdb import Cmdb
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.tailer import Tailer
from dharma.topologies.capabilities import graph

pytestmark = pytest.mark.integration

TOPIC = "infrastructure.events"
HOUR_MS = 3_600_000


def asset(rid: str, action: str, ts: int, event_id: str | None = None,
          team: str = "payments") -> dict[str, Any]:
    return {"event_id": event_id or uuid.uuid4().hex, "ts": ts, "type": "asset",
            "resource_id": rid, "attributes": {
                "action": action, "asset_type": "app", "name": rid, "provider": "aws",
                "region": "eu-west-1", "team": team, "env": "prod",
                "instance_type": "m5.large", "hourly_cost": 0.096}}


def edge(rid: str, target: str, action: str, ts: int, event_id: str | None = None,
         relation: str = "DEPENDS_ON") -> dict[str, Any]:
    return {"event_id": event_id or uuid.uuid4().hex, "ts": ts, "type": "dependency",
            "resource_id": rid,
            "attributes": {"target_id": target, "relation": relation, "action": action}}


@pytest.fixture
def producer(settings: Any) -> AvroProducer:
    return AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))


@pytest.fixture
def cmdb(settings: Any) -> Cmdb:
    return Cmdb(graph(settings))


def produce(producer: AvroProducer, events: list[dict[str, Any]]) -> None:
    for event in events:
        producer.produce(TOPIC, event["resource_id"], event)
    producer.flush()


def graph_of(cmdb: Cmdb, prefix: str) -> dict[str, Any]:
    """Every node and edge whose ids start with ``prefix``, the prefix taken off ids."""
    def strip(value: Any) -> Any:
        return value[len(prefix):] if isinstance(value, str) and value.startswith(prefix) \
            else value

    nodes = cmdb.graph.query_sync(
        "MATCH (a:Asset) WHERE a.id STARTS WITH $p RETURN properties(a) AS node", p=prefix)
    edges = cmdb.graph.query_sync(
        "MATCH (s:Asset)-[r]->(t:Asset) WHERE s.id STARTS WITH $p "
        "RETURN s.id AS s, type(r) AS rel, t.id AS t, properties(r) AS props", p=prefix)
    return {
        "nodes": {strip(n["node"]["id"]): {k: strip(v) for k, v in n["node"].items()}
                  for n in nodes},
        "edges": {(strip(e["s"]), e["rel"], strip(e["t"])): {k: strip(v) for k, v in
                                                             e["props"].items()}
                  for e in edges}}


def expected_graph(events: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """The graph the batch step makes of ``events`` (as :func:`graph_of` reads it)."""
    histories: dict[str, list[Any]] = {}
    for event in events:
        if (change := to_change(event)) is not None:
            histories.setdefault(change.key, []).append(change)
    assets, edges = project_histories(histories)

    def strip(row: dict[str, Any]) -> dict[str, Any]:
        return {k: (v[len(prefix):] if isinstance(v, str) and v.startswith(prefix) else v)
                for k, v in row.items() if v is not None}

    nodes = {a.resource_id[len(prefix):]: {**strip(a.row()), "placeholder": False}
             for a in assets}
    for e in edges:
        for end in (e.source, e.target):
            nodes.setdefault(end[len(prefix):], {"id": end[len(prefix):],
                                                 "placeholder": True, "status": "placeholder"})
    return {"nodes": nodes, "edges": {
        (e.source[len(prefix):], e.relation, e.target[len(prefix):]):
            {k: v for k, v in strip(e.row()).items() if k not in ("source", "target")}
        for e in edges}}


def wait_for_graph(poll: Any, cmdb: Cmdb, prefix: str, want: dict[str, Any],
                   what: str) -> None:
    poll(lambda: graph_of(cmdb, prefix) == want, what,
         describe=lambda: f"graph {graph_of(cmdb, prefix)!r}\nwanted {want!r}")


# -- hypothesis: streams as they really come -----------------------------------------------

IDS = ("lb", "web", "app", "db")


@st.composite
def estate_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A stream of asset and dependency events about a few assets over an hour, event ids
    unique (tie-breaks then differ only by them)."""
    base = int(time.time() * 1000) - 2 * HOUR_MS
    out = []
    for i in range(draw(st.integers(1, 25))):
        ts = base + draw(st.integers(0, 60)) * 60_000
        eid = f"e{i:03d}"
        if draw(st.booleans()):
            out.append(asset(draw(st.sampled_from(IDS)),
                             draw(st.sampled_from(["created", "updated", "retired"])), ts, eid,
                             team=draw(st.sampled_from(["payments", "platform"]))))
        else:
            source, target = draw(st.sampled_from(
                [("lb", "web"), ("web", "app"), ("app", "db"), ("web", "db")]))
            out.append(edge(source, target, draw(st.sampled_from(["added", "removed"])), ts,
                            eid, relation=draw(st.sampled_from(["DEPENDS_ON", "RUNS_ON"]))))
    return out


def prefixed(events: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """``events`` about ``prefix``-ed assets (event ids too, so they stay unique and keep
    their order)."""
    out = []
    for e in events:
        attrs = dict(e["attributes"])
        if "target_id" in attrs:
            attrs["target_id"] = prefix + attrs["target_id"]
        out.append({**e, "event_id": prefix + e["event_id"],
                    "resource_id": prefix + e["resource_id"], "attributes": attrs})
    return out


@hypothesis_settings(max_examples=6, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=estate_streams(), data=st.data())
def test_shuffled_and_repeated_streams_end_in_the_graph_of_the_ordered_stream(
        stream: list[dict[str, Any]], data: st.DataObject, cmdb_worker: Any,
        producer: AvroProducer, cmdb: Cmdb, poll: Any) -> None:
    ordered, messy = f"o{uuid.uuid4().hex[:8]}-", f"m{uuid.uuid4().hex[:8]}-"
    repeated = data.draw(st.lists(st.sampled_from(stream), max_size=8))
    shuffled = data.draw(st.permutations(stream + repeated))
    produce(producer, sorted(prefixed(stream, ordered), key=lambda e: (e["ts"], e["event_id"])))
    produce(producer, prefixed(shuffled, messy))
    want = expected_graph(stream, "")
    wait_for_graph(poll, cmdb, ordered, want, "the ordered stream's graph")
    wait_for_graph(poll, cmdb, messy, want, "the shuffled, repeated stream's graph")
    assert graph_of(cmdb, messy) == graph_of(cmdb, ordered)


@pytest.fixture
def cmdb_worker(start_worker: Any) -> Any:
    return start_worker("cmdb")


def test_a_retired_asset_leaves_the_blast_radius_but_not_the_past(
        cmdb_worker: Any, producer: AvroProducer, cmdb: Cmdb, poll: Any) -> None:
    p = f"r{uuid.uuid4().hex[:8]}-"
    t0 = int(time.time() * 1000) - HOUR_MS
    produce(producer, [
        asset(f"{p}db", "created", t0), asset(f"{p}app-1", "created", t0),
        asset(f"{p}app-2", "created", t0), asset(f"{p}web", "created", t0),
        edge(f"{p}app-1", f"{p}db", "added", t0 + 1000),
        edge(f"{p}app-2", f"{p}db", "added", t0 + 2000, relation="RUNS_ON"),
        edge(f"{p}web", f"{p}app-1", "added", t0 + 1000),
        # the retirement arrives before the edge from the web server to the retired app
        asset(f"{p}app-1", "retired", t0 + 60_000),
        edge(f"{p}web", f"{p}app-2", "added", t0 + 2000),
    ])

    def radius(at: int | None = None) -> list[tuple[str, int]]:
        found = asyncio.run(cmdb.blast_radius(f"{p}db", at=at))
        return [(i.id[len(p):], i.depth) for i in found.impacted]

    poll(lambda: radius() == [("app-2", 1), ("web", 2)], "app-1 gone from the blast radius",
         describe=lambda: repr(radius()))
    assert radius(at=t0 + 30_000) == [("app-1", 1), ("app-2", 1), ("web", 2)]
    assert radius(at=t0 + 1500) == [("app-1", 1), ("web", 2)]   # before app-2 → db
    assert radius(at=t0 - 1) == []
    retired = asyncio.run(cmdb.asset(f"{p}app-1"))
    assert (retired["status"], retired["valid_from"], retired["valid_to"]) == \
        ("retired", t0, t0 + 60_000)


def stored_changes(settings: Any, prefix: str) -> int:
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        row = conn.execute("SELECT count(*) FROM asset_changes WHERE resource_id LIKE %s",
                           (prefix + "%",)).fetchone()
        return int(row[0]) if row else 0


def test_a_worker_killed_mid_stream_changes_nothing_in_the_final_graph(
        settings: Any, start_worker: Any, producer: AvroProducer, cmdb: Cmdb,
        poll: Any) -> None:
    p = f"k{uuid.uuid4().hex[:8]}-"
    rng = random.Random(13)
    t0 = int(time.time() * 1000) - HOUR_MS
    events = [asset(f"{p}host-{i}", "created", t0 + i) for i in range(300)]
    events += [edge(f"{p}host-{i}", f"{p}host-{rng.randrange(i)}", "added", t0 + 1000 + i)
               for i in range(1, 300)]
    events += [asset(f"{p}host-{i}", rng.choice(["updated", "retired"]), t0 + 5000 + i,
                     team=rng.choice(["a", "b"])) for i in range(0, 300, 3)]
    rng.shuffle(events)
    first = start_worker("cmdb")
    produce(producer, events[:600])
    poll(lambda: stored_changes(settings, p) >= 100, "the first worker applying changes")
    first.stop(9)
    produce(producer, events[600:] + events[:50])       # and some replayed by their producer
    start_worker("cmdb")
    wait_for_graph(poll, cmdb, p, expected_graph(events, p), "the graph of every event")
    assert stored_changes(settings, p) == len(events)


def test_bad_changes_are_dead_lettered_and_the_stream_goes_on(
        settings: Any, cmdb_worker: Any, producer: AvroProducer, cmdb: Cmdb,
        poll: Any) -> None:
    p = f"d{uuid.uuid4().hex[:8]}-"
    now = int(time.time() * 1000)
    reused = asset(f"{p}db", "created", now - 10_000)
    mismatched = {**edge(f"{p}app", f"{p}db", "added", now), "type": "asset"}
    bad = [mismatched, edge(f"{p}app", f"{p}app", "added", now),
           asset(f"{p}db", "updated", now + 86_400_000, team="forged"),
           {**asset(f"{p}db", "retired", now - 5_000), "event_id": reused["event_id"]}]
    twin = asset(f"{p}queue", "created", now - 2000)   # the same id twice in one batch
    bad.append({**asset(f"{p}queue", "retired", now - 1500), "event_id": twin["event_id"]})
    with Tailer(settings, [f"{TOPIC}.dlq"], from_beginning=True) as dlq:
        produce(producer, [reused])
        poll(lambda: stored_changes(settings, p) == 1, "the first change stored")
        produce(producer, [twin, *bad, asset(f"{p}cache", "created", now - 1000)])
        letters: list[dict[str, Any]] = []

        def five_letters() -> bool:
            letters.extend(v for _, v in dlq.poll(0.5) if p.encode() in (v["original_key"] or b""))
            return len(letters) >= 5

        poll(five_letters, "five dead letters")
    reasons = sorted(v["reason"] for v in letters)
    assert {v["error_kind"] for v in letters} == {"contract_violation"}
    assert any("another type" in r for r in reasons)
    assert any("itself" in r for r in reasons)
    assert any("beyond the worker's clock" in r for r in reasons)
    assert sum("conflict" in r for r in reasons) == 2
    poll(lambda: stored_changes(settings, p) == 3, "the good changes stored")
    db = asyncio.run(cmdb.asset(f"{p}db"))
    assert (db["status"], db["team"]) == ("live", "payments")   # neither retired nor forged
    assert asyncio.run(cmdb.asset(f"{p}queue"))["status"] == "live"   # the first of the twins


def test_other_event_types_pass_by(
        settings: Any, cmdb_worker: Any, producer: AvroProducer, poll: Any) -> None:
    p = f"x{uuid.uuid4().hex[:8]}-"
    now = int(time.time() * 1000)
    check = {"event_id": uuid.uuid4().hex, "ts": now, "type": "health_check",
             "resource_id": f"{p}web", "attributes": {
                 "check": "http", "status": "failing", "latency_ms": None, "message": ""}}
    produce(producer, [check, asset(f"{p}web", "created", now)])
    # one partition (one key), in order: the health check was read before the asset
    poll(lambda: stored_changes(settings, p) == 1, "the asset stored")
    assert stored_changes(settings, p) == 1
