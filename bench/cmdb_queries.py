"""Blast-radius latency of the CMDB on a generated estate (:mod:`dharma.bench.cmdb_estate`).

The estate is loaded straight into the graph with the capability's own batch step
(``to_change`` → ``project_histories`` → ``graph_rows`` → :class:`GraphSink`), not
through Kafka: the same rows and the same Cypher the agent writes, in seconds.  Then
:meth:`Cmdb.blast_radius` is asked about random roots, most of them low in the
estate (hosts and data stores, whose blast radius is the largest), one query at a
time, now and "as it was" at a time before the churn.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

from dharma.agents.cmdb.logic import Change, project_histories, to_change
from dharma.agents.cmdb.state import graph_rows
from dharma.bench.cmdb_estate import Estate
from dharma.sinks.cmdb import Cmdb
from dharma.sinks.graph import Graph, GraphSink

__all__ = ["ROOT_WEIGHTS", "load_estate", "measure_blast_radius"]

#: How often each layer is a query's root: low layers, the expensive ones, most.
ROOT_WEIGHTS = {"host": 0.35, "db": 0.2, "cache": 0.1, "queue": 0.1, "svc": 0.15,
                "api": 0.05, "web": 0.05}

#: Rows per graph write while loading.
_LOAD_CHUNK = 2_000

#: Queries before the measured ones (connections, FalkorDB's query cache).
_WARMUP = 20


async def load_estate(graph: Graph, estate: Estate) -> dict[str, Any]:
    """Write ``estate`` (its whole history projected) to ``graph``; counts and seconds."""
    started = time.perf_counter()
    histories: dict[str, list[Change]] = {}
    for value in estate.events():
        change = to_change(value)
        assert change is not None  # the estate has asset and dependency events only
        histories.setdefault(change.key, []).append(change)
    assets, edges = project_histories(histories)
    sink = GraphSink(graph)
    await sink.setup()
    for i in range(0, len(assets), _LOAD_CHUNK):
        await sink.write([graph_rows(assets[i:i + _LOAD_CHUNK], [])])
    for i in range(0, len(edges), _LOAD_CHUNK):
        await sink.write([graph_rows([], edges[i:i + _LOAD_CHUNK])])
    return {"assets": len(assets), "edges": len(edges),
            "load_seconds": round(time.perf_counter() - started, 1)}


def pick_roots(estate: Estate, n: int, seed: int = 5) -> list[str]:
    """``n`` roots, layers weighted by :data:`ROOT_WEIGHTS`, never a retired asset."""
    rng = random.Random(seed)
    retired = set(estate.retired)
    layers = list(ROOT_WEIGHTS)
    chosen = rng.choices(layers, weights=list(ROOT_WEIGHTS.values()), k=n)
    pools = {name: [a for a in estate.layers[name] if a not in retired] for name in layers}
    return [rng.choice(pools[name]) for name in chosen]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _timed(cmdb: Cmdb, roots: list[str], depth: int,
                 at: int | None) -> dict[str, Any]:
    for root in roots[:_WARMUP]:
        await cmdb.blast_radius(root, depth=depth, at=at)
    seconds, sizes, deepest = [], [], 0
    for root in roots:
        started = time.perf_counter()
        radius = await cmdb.blast_radius(root, depth=depth, at=at)
        seconds.append(time.perf_counter() - started)
        sizes.append(len(radius.impacted))
        deepest = max([deepest, *(i.depth for i in radius.impacted)])
    return {"at": at, "queries": len(roots), "depth": depth,
            "p50_ms": round(_percentile(seconds, 0.5) * 1000, 1),
            "p99_ms": round(_percentile(seconds, 0.99) * 1000, 1),
            "max_ms": round(max(seconds) * 1000, 1),
            "mean_ms": round(statistics.fmean(seconds) * 1000, 1),
            "impacted_p50": int(_percentile(sizes, 0.5)), "impacted_max": max(sizes),
            "deepest": deepest}


async def measure_blast_radius(graph: Graph, estate: Estate, queries: int = 500,
                               depth: int = 5) -> list[dict[str, Any]]:
    """Latency rows: now, then as the estate was at :attr:`Estate.built_at`."""
    roots = pick_roots(estate, queries)
    cmdb = Cmdb(graph)
    return [await _timed(cmdb, roots, depth, None),
            await _timed(cmdb, roots, depth, estate.built_at)]
