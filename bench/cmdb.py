"""``dharma bench cmdb``: changes/s through the CMDB topology, and blast-radius latency.

Throughput, in ``rounds`` rounds on a private embedded stack: each round produces
a fresh generated estate (:mod:`dharma.bench.cmdb_estate`: asset and dependency
events, then some updates, retirements and removals) to ``infrastructure.events``,
runs a ``dharma worker --topology cmdb`` from the end of the topic before it, waits
until every change is stored and every asset and edge is in the graph, and counts
from the first batch stored to the last (PostgreSQL's ``stored_at``).  Beside it, on
the same kind of events, a Faust agent that only consumes and decodes
(:mod:`dharma.bench.faust_baseline`);
the two alternate (worker first in even rounds, baseline first in odd ones) so the
machine's noise shows in the rounds.

Latency: :mod:`dharma.bench.cmdb_queries` on an estate of ``assets`` assets and
``edges`` edges loaded straight into the graph.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from dharma.bench.cmdb_estate import Estate
from dharma.bench.cmdb_queries import load_estate, measure_blast_radius
from dharma.bench.harness import (
    bench_stack,
    faust_only_rate,
    produce,
    skip_to_end,
    start_worker,
    stop,
)
from dharma.sinks.graph import Graph
from dharma.streams.settings import Settings
from dharma.streams.topics import INFRASTRUCTURE_EVENTS
from dharma.topologies.capabilities import graph

__all__ = ["run"]

TOPIC = INFRASTRUCTURE_EVENTS.name


def _round_estate(events: int, seed: int) -> Estate:
    """About ``events`` events: a quarter assets, the rest edges, then 2 % churn."""
    assets = max(events // 4, 40)
    return Estate.generate(assets=assets, edges=3 * assets, seed=seed, churn=0.02,
                           prefix=f"r{uuid.uuid4().hex[:6]}-")


#: Rows of a round per store (one ``INSERT`` a batch, so one ``stored_at`` a batch).
_STORES = """
SELECT stored_at, count(*) FROM asset_changes WHERE event_id LIKE %s
GROUP BY stored_at ORDER BY stored_at"""


def _stores(dsn: str, prefix: str) -> list[tuple[Any, int]]:
    """(time, rows) of each batch of this round stored so far."""
    with psycopg.connect(dsn) as conn:
        try:
            return [(t, int(n)) for t, n in conn.execute(_STORES, (prefix + "%",)).fetchall()]
        except psycopg.errors.UndefinedTable:
            return []  # the sink creates it with its first batch


def _store_rate(stores: list[tuple[Any, int]]) -> float:
    """Changes/s from the first batch stored to the last, the first batch excluded (as
    the baseline counts from the end of its first batch)."""
    if len(stores) < 2:
        return 0.0
    seconds = (stores[-1][0] - stores[0][0]).total_seconds()
    return sum(n for _, n in stores[1:]) / seconds if seconds > 0 else 0.0


def in_graph(cmdb_graph: Graph, estate: Estate) -> bool:
    """Whether every asset and edge of ``estate`` is in the graph."""
    prefix = estate.prefix
    nodes = cmdb_graph.query_sync("MATCH (a:Asset) WHERE a.id STARTS WITH $p "
                                  "AND a.changes IS NOT NULL RETURN count(a) AS n", p=prefix)
    edges = cmdb_graph.query_sync("MATCH (s:Asset)-[r]->(:Asset) WHERE s.id STARTS WITH $p "
                                  "AND r.changes IS NOT NULL RETURN count(r) AS n", p=prefix)
    return (nodes[0]["n"] == len(estate.assets)
            and edges[0]["n"] == len(set(estate.edges)))


def _cmdb_rate(settings: Settings, env: dict[str, str], app_id: str, estate: Estate,
               produced: int, cmdb_graph: Graph, log: Path, timeout_s: float = 300.0) -> float:
    """Changes/s of a cmdb worker on this round's events, once all are stored and in the
    graph (0 if they are not within ``timeout_s``).

    Each batch is stored, then written to the graph, before the next is taken, so the
    time between the first and the last store covers the graph writes of all batches
    but the last.
    """
    dsn = settings.postgres.dsn.get_secret_value()
    worker = start_worker("cmdb", env, log, app_id=app_id)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            stores = _stores(dsn, estate.prefix)
            if sum(n for _, n in stores) >= produced and in_graph(cmdb_graph, estate):
                return _store_rate(stores)
            time.sleep(0.5)
    finally:
        stop(worker)
    return 0.0


def _round(settings: Settings, env: dict[str, str], cmdb_graph: Graph, events: int, index: int,
           log: Path) -> dict[str, Any]:
    app_id = f"bench{uuid.uuid4().hex[:6]}"
    skip_to_end(settings, f"{app_id}-cmdb", TOPIC)
    estate = _round_estate(events, seed=index + 1)
    values = estate.events()
    produced = produce(settings, TOPIC, ((v["resource_id"], v) for v in values))
    measures = {
        "cmdb": lambda: _cmdb_rate(settings, env, app_id, estate, produced, cmdb_graph, log),
        "faust": lambda: faust_only_rate(env, TOPIC, produced),
    }
    order = ["cmdb", "faust"] if index % 2 == 0 else ["faust", "cmdb"]
    rates = {name: measures[name]() for name in order}
    return {"events": produced, "first": order[0],
            "cmdb_per_s": round(rates["cmdb"]), "faust_per_s": round(rates["faust"]),
            "ratio": round(rates["cmdb"] / rates["faust"], 3) if rates["faust"] else None}


async def _latency(cmdb_graph: Graph, estate: Estate, queries: int) -> dict[str, Any]:
    loaded = await load_estate(cmdb_graph, estate)
    rows = await measure_blast_radius(cmdb_graph, estate, queries=queries)
    return {"estate": {**loaded, "depth_reached": estate.depth_reached}, "blast_radius": rows}


def measure(settings: Settings, env: dict[str, str], log: Path, events: int = 20_000,
            rounds: int = 2, assets: int = 10_000, edges: int = 30_000, queries: int = 500,
            prefix: str = "estate-") -> dict[str, Any]:
    """Throughput rounds, then blast-radius latency, on the stack of ``settings`` (whose
    environment is ``env``); worker output appended to ``log``."""
    return asyncio.run(_measure(settings, env, log, events, rounds, assets, edges, queries,
                                prefix))


async def _measure(settings: Settings, env: dict[str, str], log: Path, events: int,
                   rounds: int, assets: int, edges: int, queries: int,
                   prefix: str) -> dict[str, Any]:
    cmdb_graph = graph(settings)
    try:  # the rounds block (they wait on subprocesses); nothing else runs meanwhile
        throughput = [_round(settings, env, cmdb_graph, events, i, log) for i in range(rounds)]
        estate = Estate.generate(assets=assets, edges=edges, prefix=prefix)
        latency = await _latency(cmdb_graph, estate, queries)
    finally:
        await cmdb_graph.close()
    ratios = [r["ratio"] for r in throughput if r["ratio"] is not None]
    return {"throughput": throughput,
            "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
            **latency}


def run(events: int = 20_000, rounds: int = 2, assets: int = 10_000, edges: int = 30_000,
        queries: int = 500) -> dict[str, Any]:
    """:func:`measure` on a private embedded stack; figures as a dict."""
    log = Path(tempfile.mkdtemp(prefix="dharma-bench-cmdb-")) / "worker.log"
    with bench_stack() as (settings, env):
        figures = measure(settings, env, log, events, rounds, assets, edges, queries)
    return {**figures, "worker_log": str(log)}
