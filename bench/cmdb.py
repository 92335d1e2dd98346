"""``dharma bench cmdb``: changes/s through the CMDB topology, and blast-radius latency.

Throughput, in ``rounds`` rounds on a private embedded stack: each round produces
a fresh generated estate (:mod:`dharma.bench.cmdb_estate`: asset and dependency
events, then some updates, retirements and removals) to ``infrastructure.events``,
runs a ``dharma worker --topology cmdb`` from the end of the topic before it, and
counts from the first change stored to the last one applied to the graph (every
asset and edge of the round in the graph).  Beside it, on the same kind of events,
a Faust agent that only consumes and decodes (:mod:`dharma.bench.faust_baseline`);
the two alternate (worker first in even rounds, baseline first in odd ones) so the
machine's noise shows in the rounds.

Latency: :mod:`dharma.bench.cmdb_queries` on an estate of ``assets`` assets and
``edges`` edges loaded straight into the graph.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
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
    steady_rate,
    stop,
)
from dharma.sinks.graph import BoltGraph
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


def _stored_counter(dsn: str, prefix: str) -> Any:
    def stored() -> int:
        with psycopg.connect(dsn) as conn:
            try:
                row = conn.execute("SELECT count(*) FROM asset_changes WHERE event_id LIKE %s",
                                   (prefix + "%",)).fetchone()
            except psycopg.errors.UndefinedTable:
                return 0  # the sink creates it with its first batch
            return int(row[0]) if row else 0
    return stored


def in_graph(bolt: BoltGraph, estate: Estate) -> bool:
    """Whether every asset and edge of ``estate`` is in the graph."""
    prefix = estate.prefix
    nodes = bolt.query_sync("MATCH (a:Asset) WHERE a.id STARTS WITH $p "
                            "AND a.changes IS NOT NULL RETURN count(a) AS n", p=prefix)
    edges = bolt.query_sync("MATCH (s:Asset)-[r]->(:Asset) WHERE s.id STARTS WITH $p "
                            "AND r.changes IS NOT NULL RETURN count(r) AS n", p=prefix)
    return (nodes[0]["n"] == len(estate.assets)
            and edges[0]["n"] == len(set(estate.edges)))


def _cmdb_rate(settings: Settings, env: dict[str, str], app_id: str, estate: Estate,
               produced: int, bolt: BoltGraph, log: Path) -> float:
    """Changes/s of a cmdb worker on this round's events: stored, then in the graph."""
    stored = _stored_counter(settings.postgres.dsn.get_secret_value(), estate.prefix)

    def applied() -> int:
        n = stored()
        return n if n < produced or in_graph(bolt, estate) else n - 1

    worker = start_worker("cmdb", env, log, app_id=app_id)
    try:
        rate, seen = steady_rate(applied, produced)
    finally:
        stop(worker)
    return rate if seen >= produced else 0.0


def _round(settings: Settings, env: dict[str, str], bolt: BoltGraph, events: int, index: int,
           log: Path) -> dict[str, Any]:
    app_id = f"bench{uuid.uuid4().hex[:6]}"
    skip_to_end(settings, f"{app_id}-cmdb", TOPIC)
    estate = _round_estate(events, seed=index + 1)
    values = estate.events()
    produced = produce(settings, TOPIC, ((v["resource_id"], v) for v in values))
    measures = {
        "cmdb": lambda: _cmdb_rate(settings, env, app_id, estate, produced, bolt, log),
        "faust": lambda: faust_only_rate(env, TOPIC, produced),
    }
    order = ["cmdb", "faust"] if index % 2 == 0 else ["faust", "cmdb"]
    rates = {name: measures[name]() for name in order}
    return {"events": produced, "first": order[0],
            "cmdb_per_s": round(rates["cmdb"]), "faust_per_s": round(rates["faust"]),
            "ratio": round(rates["cmdb"] / rates["faust"], 3) if rates["faust"] else None}


async def _latency(bolt: BoltGraph, estate: Estate, queries: int) -> dict[str, Any]:
    loaded = await load_estate(bolt, estate)
    rows = await measure_blast_radius(bolt, estate, queries=queries)
    return {"estate": {**loaded, "depth_reached": estate.depth_reached}, "blast_radius": rows}


def measure(settings: Settings, env: dict[str, str], log: Path, events: int = 20_000,
            rounds: int = 2, assets: int = 10_000, edges: int = 30_000, queries: int = 500,
            prefix: str = "estate-") -> dict[str, Any]:
    """Throughput rounds, then blast-radius latency, on the stack of ``settings`` (whose
    environment is ``env``); worker output appended to ``log``."""
    bolt = graph(settings)  # one connection for the run: FalkorDB's Bolt may leave a
    try:                    # new one unanswered after a client closed its own
        throughput = [_round(settings, env, bolt, events, i, log) for i in range(rounds)]
        estate = Estate.generate(assets=assets, edges=edges, prefix=prefix)
        latency = asyncio.run(_latency(bolt, estate, queries))
    finally:
        bolt.close_sync()
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
