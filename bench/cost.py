"""``dharma bench cost``: lifecycle and usage events/s through the cost topology, beside a
Faust agent that only consumes and decodes the same events, and forecast time.

Each phase produces fresh events to one topic and runs a ``dharma worker --topology
cost`` from the end of the topic before them, counting the events it has acknowledged
(scraped from its metrics) from the first scrape that sees one: start-up is excluded.
Lifecycle: the generator's asset churn dated over the last ``span_hours``, re-keyed per
round so every asset is new (live events leave little to accrue; a longer span is a
backfill, and every past hour of every asset is accrued as well).  Usage: CPU and memory
samples of those assets.  The Faust
decode-only agent (:mod:`dharma.bench.faust_baseline`) runs on the same events in
the same phase, alternating which goes first.
"""

from __future__ import annotations

import random
import re
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dharma.bench.cost_forecast import measure_forecast_time
from dharma.bench.harness import (
    bench_stack,
    faust_only_rate,
    produce,
    skip_to_end,
    start_worker,
    steady_rate,
    stop,
)
from dharma.streams.settings import Settings
from dharma.streams.topics import INFRASTRUCTURE_EVENTS, METRICS_RAW
from dharma.synthetic import EstateConfig
from dharma.synthetic.lifecycle import ChurnConfig, churn_events

__all__ = ["run"]

DAY_MS = 86_400_000


def lifecycle(count: int, tag: str, span_ms: int) -> list[tuple[str, dict[str, Any]]]:
    """About ``count`` lifecycle events, every asset new (ids tagged), dated over the last
    ``span_ms``."""
    now = int(time.time() * 1000)
    out: list[tuple[str, dict[str, Any]]] = []
    seed = 0
    per_day = 400.0 * DAY_MS / span_ms  # the same number of copies per span
    while len(out) < count:
        seed += 1
        churn = ChurnConfig(copies_per_day=per_day, resizes_per_day=per_day / 8)
        for e in churn_events(seed, now - span_ms, now - 60_000, EstateConfig(), churn):
            rid = f"{tag}-{seed}-{e.value['resource_id']}"
            out.append((rid, {**e.value, "resource_id": rid}))
    return out[:count]


def usage(count: int, sources: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``count`` CPU and memory samples of ``sources``, a minute apart per source."""
    rng = random.Random(3)
    start = int(time.time() * 1000) - (count // max(len(sources), 1) + 2) * 60_000
    for i in range(count):
        source = sources[i % len(sources)]
        metric = "cpu_utilization" if i % 2 == 0 else "memory_utilization"
        yield source, {"source": source, "metric": metric, "value": 100 * rng.random(),
                       "ts": start + (i // len(sources)) * 60_000, "labels": {},
                       "unit": "percent"}


_METRICS_URL = re.compile(r"metrics at\s+(http://\S+/metrics)")


def acknowledged(url: str) -> int:
    """Events the worker at ``url`` has acknowledged (its latency histogram's count)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("dharma_processing_latency_seconds_count")))


def _metrics_url(log: Path, since: int) -> str | None:
    found = _METRICS_URL.search(log.read_bytes()[since:].decode(errors="replace"))
    return found.group(1) if found else None


def _cost_rate(settings: Settings, env: dict[str, str], produced: int, app_id: str,
               log: Path) -> float:
    """Events/s the worker acknowledges, from the first scrape that sees any (start-up
    excluded) until all are."""
    since = log.stat().st_size if log.exists() else 0
    worker = start_worker("cost", env, log, app_id=app_id)
    try:
        deadline = time.monotonic() + 60
        while (url := _metrics_url(log, since)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if url is None:
            return 0.0
        # a scrape renders every metric in the worker: once a second costs it little
        rate, seen = steady_rate(lambda: acknowledged(url), produced, timeout=300.0,
                                 interval=1.0)
    finally:
        stop(worker)
    return rate if seen >= produced else 0.0


def _phase(settings: Settings, env: dict[str, str], topic: str,
           records: list[tuple[str, dict[str, Any]]], index: int, log: Path) -> dict[str, Any]:
    app_id = f"bench{uuid.uuid4().hex[:6]}"
    for t in (INFRASTRUCTURE_EVENTS.name, METRICS_RAW.name):
        skip_to_end(settings, f"{app_id}-cost", t)
    produced = produce(settings, topic, iter(records))
    measures = {
        "cost": lambda: _cost_rate(settings, env, produced, app_id, log),
        "faust": lambda: faust_only_rate(env, topic, produced),
    }
    order = ["cost", "faust"] if index % 2 == 0 else ["faust", "cost"]
    rates = {name: measures[name]() for name in order}
    return {"topic": topic, "events": produced, "first": order[0],
            "cost_per_s": round(rates["cost"]), "faust_per_s": round(rates["faust"]),
            "ratio": round(rates["cost"] / rates["faust"], 3) if rates["faust"] else None}


def measure(settings: Settings, env: dict[str, str], log: Path, events: int,
            rounds: int, span_ms: int) -> list[dict[str, Any]]:
    """``rounds`` rounds of a lifecycle phase and a usage phase."""
    out = []
    for i in range(rounds):
        tag = f"b{uuid.uuid4().hex[:5]}"
        assets = lifecycle(events, tag, span_ms)
        out.append(_phase(settings, env, INFRASTRUCTURE_EVENTS.name, assets, i, log))
        sources = sorted({rid for rid, _ in assets})
        out.append(_phase(settings, env, METRICS_RAW.name, list(usage(events, sources)), i, log))
    return out


def run(events: int = 20_000, rounds: int = 2, forecasts: int = 50,
        span_hours: float = 2.0) -> dict[str, Any]:
    """Forecast time per series after warm-up, then throughput rounds on a private
    embedded stack; figures as a dict."""
    forecast = measure_forecast_time(forecasts)
    log = Path(tempfile.mkdtemp(prefix="dharma-bench-cost-")) / "worker.log"
    with bench_stack() as (settings, env):
        throughput = measure(settings, env, log, events, rounds, int(span_hours * 3_600_000))
    ratios: dict[str, list[float]] = {}
    for row in throughput:
        if row["ratio"] is not None:
            ratios.setdefault(row["topic"], []).append(row["ratio"])
    return {"span_hours": span_hours, "throughput": throughput,
            "ratio_median": {t: round(statistics.median(r), 3) for t, r in ratios.items()},
            "forecast": forecast, "worker_log": str(log)}
