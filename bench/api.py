"""``dharma bench api``: latency of the read API's main endpoints with 10,000 series and
100,000 access decisions stored, and live delivery to 50 subscribers.

On a private embedded stack, the API runs as ``dharma api serve`` in a process of its
own (the load client does not share its interpreter), its rate limit raised out of
the way (every request still passes the limiter).  Then:

1. live delivery (:mod:`dharma.bench.api_live`), first, on the fresh broker:
   ``subscribers`` SSE subscribers while predictions and alerts flow, and the anomaly
   worker's lag without and with them;
2. the stores are filled (:mod:`dharma.bench.api_seed`): ``decisions`` audit rows
   through the audit sink, ``series`` series of ``points`` scores each and 2,000 alerts
   through Kafka (read by the API's own live views, awaited until it lists every
   series), 200 incidents through the healing store;
3. latency (:mod:`dharma.bench.api_load`): p50/p99 of each main endpoint with a token
   whose ALLOW is cached, then with a new token per request (trust decision and audit
   write), against the floor of ``/api/health`` on the same server and client.

Data are generated from ``seed``; timings are this machine's.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from dharma.bench.api_live import measure_live
from dharma.bench.api_load import Endpoint, measure_endpoints
from dharma.bench.api_seed import (
    alert_records,
    decision_rows,
    prediction_records,
    store_decisions,
    store_incidents,
    user_of,
)
from dharma.bench.api_tokens import admin_token, fresh_tokens
from dharma.bench.harness import bench_stack, produce, stop
from dharma.infra.stack.ephemeral import free_port
from dharma.streams.settings import Settings
from dharma.streams.topics import ALERTS, PREDICTIONS

__all__ = ["INCIDENTS", "Sizes", "measure", "run", "seed", "start_api"]

DAY_MS = 86_400_000
#: Resources each cached endpoint cycles through (all warmed up first).
VARIANTS = 100
#: Incidents stored, rooted at the first as many hosts (:func:`store_incidents`).
INCIDENTS = 200


def start_api(env: dict[str, str], log: Path, timeout_s: float = 60.0
              ) -> tuple[subprocess.Popen[bytes], str]:
    """``dharma api serve`` on a free loopback port (rate limit out of the way); the
    process and its base URL once it answers its health check."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dharma.cli", "api", "serve", "--host", "127.0.0.1",
             "--port", str(port)],
            env={**os.environ, **env, "DHARMA_API_RATE_LIMIT": "1000000000"},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"the API did not start (log: {log})")


def _series_ids(client: httpx.Client, max_page: int) -> list[str]:
    """Every series the API lists, page after page."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": max_page, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/series", params=params)
        page.raise_for_status()
        body = page.json()
        ids += [item["series_id"] for item in body["items"]]
        if not (cursor := body.get("next")):
            return ids


def _await(check: Callable[[], bool], what: str, timeout_s: float) -> float:
    """Seconds until ``check()`` holds; RuntimeError after ``timeout_s``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


def seed(settings: Settings, client: httpx.Client, series: int, points: int,
         decisions: int, seed_value: int, now_ms: int) -> dict[str, Any]:
    """Fill the stores (see the module docstring); how long each took."""
    dsn = settings.postgres.dsn.get_secret_value()
    figures: dict[str, Any] = {"series": series, "points": points, "decisions": decisions}
    started = time.perf_counter()
    rows = decision_rows(decisions, seed_value, now_ms)
    figures["decisions_stored"] = asyncio.run(store_decisions(dsn, rows))
    figures["decisions_s"] = round(time.perf_counter() - started, 1)
    figures["incidents"] = asyncio.run(store_incidents(dsn, INCIDENTS, seed_value, now_ms))
    started = time.perf_counter()
    produce(settings, ALERTS.name, alert_records(2_000, seed_value, now_ms))
    produced = produce(settings, PREDICTIONS.name,
                       prediction_records(series, points, seed_value, now_ms))
    figures["predictions_produced_s"] = round(time.perf_counter() - started, 1)
    ids: list[str] = []

    def listed() -> bool:
        ids[:] = _series_ids(client, settings.api.max_page)
        return len(ids) >= series

    figures["series_listed_after_s"] = _await(listed, f"{series} series listed",
                                              max(120.0, produced / 500))
    figures["series_ids"] = ids
    return figures


def endpoints(series_ids: list[str], seed_value: int, now_ms: int) -> list[Endpoint]:
    """The main endpoints, each with :data:`VARIANTS` resources or queries."""
    rng = random.Random(seed_value)
    ids = rng.sample(series_ids, min(VARIANTS, len(series_ids)))
    hosts = max(1, len(series_ids) // 40)
    since = now_ms - DAY_MS
    return [
        Endpoint("/api/v1/alerts", ("/api/v1/alerts",)),
        Endpoint("/api/v1/series?q=", tuple(
            f"/api/v1/series?q=host-{rng.randrange(hosts):04d}" for _ in range(VARIANTS))),
        Endpoint("/api/v1/series/{id}/points", tuple(
            f"/api/v1/series/{quote(i, safe='')}/points" for i in ids)),
        Endpoint("/api/v1/decisions?user=", tuple(
            f"/api/v1/decisions?user={user_of(u)}" for u in range(VARIANTS))),
        Endpoint("/api/v1/decisions/summary (1 h)", ("/api/v1/decisions/summary",)),
        Endpoint("/api/v1/decisions/summary (24 h)",
                 (f"/api/v1/decisions/summary?since={since}&bucket_s=3600",)),
        Endpoint("/api/v1/incidents", ("/api/v1/incidents",)),
        Endpoint("/api/v1/pipeline/health", ("/api/v1/pipeline/health",)),
    ]


@dataclass(frozen=True)
class Sizes:
    """What one run stores, sends and times (the command's options)."""

    series: int = 10_000
    points: int = 20
    decisions: int = 100_000
    #: Cached requests per endpoint and round; rounds are also pairs of live phases.
    requests: int = 500
    rounds: int = 2
    #: Uncached requests per endpoint (a new token each).
    uncached: int = 200
    concurrency: int = 4
    subscribers: int = 50
    live_seconds: float = 20.0
    prediction_rate: int = 1_000
    alert_rate: int = 100
    seed: int = 16


def measure(settings: Settings, env: dict[str, str], logdir: Path,
            sizes: Sizes = Sizes()) -> dict[str, Any]:  # frozen: a safe default
    """Every figure of the bench on the stack of ``settings`` (environment ``env``);
    the API's and the worker's output in ``logdir``."""
    z = sizes
    api, url = start_api(env, logdir / "api.log")
    try:
        token = admin_token(settings)
        # first, on the fresh broker: it slows down as it retains records (docs/broker.md),
        # which would move the lag between phases more than the subscribers do
        live = measure_live(settings, env, logdir / "worker.log", url, token, api.pid,
                            subscribers=z.subscribers, rounds=z.rounds,
                            seconds=z.live_seconds, prediction_rate=z.prediction_rate,
                            alert_rate=z.alert_rate)
        now_ms = int(time.time() * 1000)
        with httpx.Client(base_url=url, timeout=60,
                          headers={"authorization": f"Bearer {token}"}) as client:
            stored = seed(settings, client, z.series, z.points, z.decisions, z.seed, now_ms)
        timed = endpoints(stored.pop("series_ids"), z.seed, now_ms)
        fresh = fresh_tokens(settings, z.uncached * len(timed))
        latency = measure_endpoints(url, token, timed, z.requests, z.rounds, z.concurrency,
                                    fresh)
    finally:
        stop(api)
    phases = live.pop("phases")
    return {"sizes": asdict(sizes), "seed": stored, **latency, "live": live,
            "live_phases": phases, "logs": str(logdir)}


def run(sizes: Sizes) -> dict[str, Any]:
    """:func:`measure` on a private embedded stack; figures as a dict."""
    logdir = Path(tempfile.mkdtemp(prefix="dharma-bench-api-"))
    with bench_stack() as (settings, env):
        return measure(settings, env, logdir, sizes)
