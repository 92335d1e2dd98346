"""``dharma bench healing`` runs end to end (tiny sizes; figures present and sane, not
timed)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from dharma.bench.healing import measure

pytestmark = pytest.mark.integration


def test_healing_bench_measures_request_latency_and_alerts_per_second(
        settings: Any, stack_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    figures = measure(settings, stack_env, log, assets=1_000, alerts=120, rate=10.0,
                      trickle_alerts=10, prefix=f"hb{uuid.uuid4().hex[:6]}-")
    print(json.dumps(figures, indent=2))
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    assert figures["estate"]["assets"] == 1_000 and figures["estate"]["samples"] > 0
    latency = figures["latency"]
    assert latency["alerts"] == latency["requested"] == 10, tail  # every alert requested
    assert latency["min_ms"] <= latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    throughput = figures["throughput"]
    assert throughput["handled"] == 120 and throughput["alerts_per_s"] > 0, tail
    assert set(throughput["mix"]) == {"new", "repeat", "symptom", "resolved"}
    assert throughput["incidents"] > 0 and throughput["undecided"] == 0
    assert throughput["decisions"].get("requested", 0) > 0  # isolated: the breaker holds
    assert throughput["faust_per_s"] > 0
    assert throughput["ratio"] == pytest.approx(
        throughput["alerts_per_s"] / throughput["faust_per_s"], abs=0.01)
