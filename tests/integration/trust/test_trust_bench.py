"""The throughput bench runs end to end (small n; DHARMA_BENCH_EVENTS for real figures)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dharma.bench.trust_throughput import measure_trust_throughput

pytestmark = pytest.mark.integration


def test_trust_throughput_bench_runs(settings: Any, tmp_path: Path) -> None:
    n = int(os.environ.get("DHARMA_BENCH_EVENTS", "2000"))
    result = measure_trust_throughput(settings, n, rounds=1, log_path=str(tmp_path / "worker.log"))
    print(json.dumps(result, indent=2))
    log = (tmp_path / "worker.log").read_text(errors="replace")[-4000:]
    assert result["trust"]["decisions"] == n, log
    assert result["baseline"]["rate"] > 0 and result["trust"]["rate"] > 0, log
