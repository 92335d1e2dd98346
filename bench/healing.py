"""``dharma bench healing``: alert → remediation request latency, and alerts/s handled,
by a ``dharma worker --topology healing`` with an estate of ``assets`` assets in the
CMDB graph.

On a private embedded stack: the estate (:mod:`dharma.bench.healing_load`) is loaded
into the graph and the alerting resources' metric history into PostgreSQL; one
healing worker runs from the end of its topics with a short group wait
(``group_wait_s``), a 0.2 s tick and no rate limit.  Then:

1. latency (:mod:`dharma.bench.healing_latency`): ``trickle`` independent alerts at
   ``rate`` a second, each a new incident on its own web server; per alert, the
   ``requested`` event's arrival minus the alert's produce time minus the group wait;
2. throughput: ``alerts`` alerts produced as fast as they go (new incidents, repeats
   of open incidents' alerts, symptoms on load balancers that depend on an alerting
   web server, resolved notifications), over the incidents the trickle left open;
   alerts/s from the first to the last stored in its incident's timeline
   (:func:`~dharma.bench.harness.steady_rate`), then the time until every new
   incident is opened and decided;
3. the worker stopped, a Faust agent that only consumes and decodes
   ``alerts.notifications`` (:mod:`dharma.bench.faust_baseline`) on the same kind of
   alerts: its rate, and the healing worker's ratio to it.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Producer

from dharma.bench.cmdb_estate import Estate
from dharma.bench.cmdb_queries import load_estate
from dharma.bench.harness import (
    bench_stack,
    faust_only_rate,
    skip_to_end,
    start_worker,
    steady_rate,
    stop,
)
from dharma.bench.healing_latency import RequestWatch, latency_figures, trickle
from dharma.bench.healing_load import AlertPlan, store_leaks
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.settings import Settings
from dharma.streams.topics import ALERTS, INFRASTRUCTURE_EVENTS
from dharma.topologies.capabilities import graph

__all__ = ["measure", "run"]

#: Alerts whose requests are awaited before the trickle (connections, caches), not counted.
WARMUP = 3

_HANDLED = """
SELECT count(*) AS n FROM incident_timeline
WHERE kind = 'alert' AND at >= %s AND detail->>'source' LIKE %s"""

_SETTLED = """
SELECT count(*) AS incidents, count(*) FILTER (WHERE i.status = 'pending') AS pending,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM remediations r WHERE r.incident_id = i.incident_id
           AND r.status <> 'decided')) AS undecided
FROM incidents i WHERE i.opened_at >= %s AND i.title LIKE %s"""

_DECISIONS = """
SELECT r.status, coalesce(r.guard, '') AS guard, count(*) AS n
FROM remediations r JOIN incidents i USING (incident_id)
WHERE i.opened_at >= %s AND i.title LIKE %s GROUP BY 1, 2 ORDER BY 1, 2"""


def _query(dsn: str, query: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        try:
            return conn.execute(query, params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []  # the worker creates its tables when it starts


def worker_env(env: dict[str, str], group_wait_s: float, tick_s: float) -> dict[str, str]:
    """The healing worker's settings: this group wait and tick, no rate limit."""
    return {**env, "DHARMA_HEALING_GROUP_WAIT_S": str(group_wait_s),
            "DHARMA_HEALING_TICK_S": str(tick_s),
            "DHARMA_HEALING_RATE_LIMIT_PER_HOUR": "1000000"}


async def _prepare(settings: Settings, estate: Estate, sources: list[str]) -> dict[str, Any]:
    cmdb_graph = graph(settings)
    try:
        loaded = await load_estate(cmdb_graph, estate)
    finally:
        await cmdb_graph.close()
    started = time.perf_counter()
    samples = await store_leaks(settings.postgres.dsn.get_secret_value(), sources,
                                int(time.time() * 1000))
    return {**loaded, "samples": samples,
            "samples_seconds": round(time.perf_counter() - started, 1)}


def _latency(settings: Settings, producer: AvroProducer, targets: list[str], rate: float,
             group_wait_s: float) -> dict[str, Any]:
    warmup, timed = targets[:WARMUP], targets[WARMUP:]
    with RequestWatch(settings, targets) as watch:
        trickle(producer, warmup, rate)
        if not watch.wait_for(warmup, 180):
            raise RuntimeError("the healing worker requested nothing for the warm-up alerts")
        sent = trickle(producer, timed, rate)
        watch.wait_for(timed, group_wait_s + 30)
        return latency_figures(sent, dict(watch.arrivals), group_wait_s,
                               dict(watch.published))


def _throughput(settings: Settings, producer: AvroProducer, plan: AlertPlan, n: int,
                prefix: str) -> dict[str, Any]:
    dsn = settings.postgres.dsn.get_secret_value()
    start_ms = int(time.time() * 1000)
    mix = plan.mix(n, start_ms)

    def send() -> None:
        for _, record in mix:
            producer.produce(ALERTS.name, record["fingerprint"], record)
        producer.flush(60)

    def handled() -> int:
        rows = _query(dsn, _HANDLED, start_ms, prefix + "%")
        return int(rows[0]["n"]) if rows else 0

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    rate, seen = steady_rate(handled, n, timeout=600, interval=0.1)
    sender.join(60)
    settled = _settle(dsn, start_ms, prefix)
    decisions = {f"{r['status']}/{r['guard']}".rstrip("/"): r["n"]
                 for r in _query(dsn, _DECISIONS, start_ms, f"%{prefix}%")}
    return {"alerts": n, "handled": seen, "mix": dict(Counter(kind for kind, _ in mix)),
            "alerts_per_s": round(rate, 1), **settled, "decisions": decisions}


def _settle(dsn: str, start_ms: int, prefix: str, timeout_s: float = 300) -> dict[str, Any]:
    """Seconds from the phase's start until every incident it opened is decided."""
    deadline = time.monotonic() + timeout_s
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        row = _query(dsn, _SETTLED, start_ms, f"%{prefix}%")[0]
        if row["incidents"] and not row["pending"] and not row["undecided"]:
            break
        time.sleep(0.2)
    return {"incidents": row.get("incidents"), "undecided": row.get("undecided"),
            "settled_s": round(time.time() - start_ms / 1000, 1)}


def _with_worker(settings: Settings, env: dict[str, str], log: Path,
                 work: Callable[[AvroProducer], tuple[dict[str, Any], dict[str, Any]]]
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``work`` while a healing worker runs from the end of its topics (stopped after)."""
    app_id = f"bench{uuid.uuid4().hex[:6]}"
    for topic in (ALERTS.name, INFRASTRUCTURE_EVENTS.name):
        skip_to_end(settings, f"{app_id}-healing", topic)
    producer = AvroProducer(Producer({**settings.kafka.confluent_config(), "linger.ms": 5}),
                            registry_client(settings))
    worker = start_worker("healing", env, log, app_id)
    try:
        return work(producer)
    finally:
        stop(worker)


def measure(settings: Settings, env: dict[str, str], log: Path, assets: int = 10_000,
            alerts: int = 1_500, rate: float = 5.0, trickle_alerts: int = 150,
            group_wait_s: float = 1.0, tick_s: float = 0.2,
            prefix: str | None = None) -> dict[str, Any]:
    """Latency, then throughput and its baseline, on the stack of ``settings`` (whose
    environment is ``env``); worker output appended to ``log``."""
    prefix = prefix or f"heal{uuid.uuid4().hex[:6]}-"
    estate = Estate.generate(assets=assets, edges=3 * assets, churn=0.0, prefix=prefix)
    plan = AlertPlan.of(estate, latency=WARMUP + trickle_alerts)
    fresh = sorted({r["source"] for kind, r in plan.mix(alerts, 0) if kind == "new"})
    loaded = asyncio.run(_prepare(settings, estate, [*plan.latency, *fresh]))

    def phases(producer: AvroProducer) -> tuple[dict[str, Any], dict[str, Any]]:
        return (_latency(settings, producer, plan.latency, rate, group_wait_s),
                _throughput(settings, producer, plan, alerts, prefix))

    latency, throughput = _with_worker(
        settings, worker_env(env, group_wait_s, tick_s), log, phases)
    # batches of 100: with the default 1,000, a few thousand alerts leave the baseline
    # (timed from the end of its first batch) too few to time
    faust = faust_only_rate({**env, "DHARMA_WORKER_BATCH_SIZE": "100"}, ALERTS.name, alerts)
    # above the breaker's 40 % of a team's web servers, new incidents are skipped
    throughput["web_servers_alerting"] = round(
        (len(plan.latency) + len(fresh)) / len(estate.layers["web"]), 3)
    throughput.update(faust_per_s=round(faust),
                      ratio=round(throughput["alerts_per_s"] / faust, 3) if faust else None)
    return {"estate": {**loaded, "depth_reached": estate.depth_reached},
            "settings": {"group_wait_s": group_wait_s, "tick_s": tick_s, "rate": rate},
            "latency": latency, "throughput": throughput}


def run(assets: int = 10_000, alerts: int = 1_500, rate: float = 5.0,
        trickle_alerts: int = 150) -> dict[str, Any]:
    """:func:`measure` on a private embedded stack; figures as a dict."""
    log = Path(tempfile.mkdtemp(prefix="dharma-bench-healing-")) / "worker.log"
    with bench_stack() as (settings, env):
        figures = measure(settings, env, log, assets, alerts, rate, trickle_alerts)
    return {**figures, "worker_log": str(log)}
