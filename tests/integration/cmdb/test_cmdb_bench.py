"""``dharma bench cmdb`` runs end to end (tiny sizes; figures present and sane, not timed)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from dharma.bench.cmdb import measure

pytestmark = pytest.mark.integration


def test_cmdb_bench_measures_throughput_and_blast_radius(
        settings: Any, stack_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    env = {**stack_env, "DHARMA_WORKER_BATCH_SIZE": "100"}  # a rate needs several batches
    figures = measure(settings, env, log, events=400, rounds=2, assets=400, edges=1_200,
                      queries=40, prefix=f"bench-{uuid.uuid4().hex[:8]}-")
    print(json.dumps(figures, indent=2))
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    rounds = figures["throughput"]
    assert [r["first"] for r in rounds] == ["cmdb", "faust"]  # the two alternate
    for r in rounds:
        assert r["events"] >= 400 and r["cmdb_per_s"] > 0 and r["faust_per_s"] > 0, tail
        assert r["ratio"] == pytest.approx(r["cmdb_per_s"] / r["faust_per_s"], abs=0.01)
    assert figures["estate"]["assets"] == 400 and figures["estate"]["edges"] == 1_200
    assert figures["estate"]["depth_reached"] == 5
    now, then = figures["blast_radius"]
    assert now["at"] is None and then["at"] is not None
    for row in (now, then):
        assert row["queries"] == 40 and row["depth"] == 5
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert 0 <= row["impacted_p50"] <= row["impacted_max"] and row["deepest"] <= 5
