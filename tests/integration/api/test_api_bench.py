"""``dharma bench api`` runs end to end (tiny sizes; figures present and sane, not timed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dharma.bench.api import Sizes, measure

pytestmark = pytest.mark.integration

ENDPOINTS = {"/api/v1/alerts", "/api/v1/series?q=", "/api/v1/series/{id}/points",
             "/api/v1/decisions?user=", "/api/v1/decisions/summary (1 h)",
             "/api/v1/decisions/summary (24 h)", "/api/v1/incidents",
             "/api/v1/pipeline/health"}


def _sane(row: dict[str, Any], requests: int) -> None:
    assert row["requests"] == requests, row
    assert row["errors"] is None, row  # every request answered 2xx
    assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row


def test_api_bench_times_endpoints_and_live_delivery(
        settings: Any, stack_env: dict[str, str], tmp_path: Path) -> None:
    figures = measure(settings, stack_env, tmp_path, Sizes(
        series=200, points=3, decisions=2_000, requests=20, rounds=1, uncached=4,
        subscribers=3, live_seconds=3.0, prediction_rate=100, alert_rate=20, seed=1616))
    print(json.dumps(figures, indent=2))
    api_log = (tmp_path / "api.log").read_text(errors="replace")[-3000:]
    assert figures["seed"]["decisions_stored"] == 2_000 and figures["seed"]["incidents"] == 200
    assert figures["warmup_errors"] is None, api_log
    cached = {row["endpoint"]: row for row in figures["cached"]}
    assert set(cached) == ENDPOINTS | {"/api/health"}
    for row in cached.values():
        _sane(row, 20)
    uncached = {row["endpoint"]: row for row in figures["uncached"]}
    assert set(uncached) == ENDPOINTS
    for row in uncached.values():
        _sane(row, 4)

    live = figures["live"]
    phases = figures["live_phases"]
    without, with_ = ([p for p in phases if p["subscribers"] == n] for n in (0, 3))
    assert len(without) == len(with_) == 1
    for phase in phases:
        assert phase["samples"] == 300 and phase["alerts"] == 60 and phase["unscored"] == 0
        assert phase["prediction_p50_ms"] <= phase["prediction_p99_ms"]
        assert phase["lag_max"] is not None and phase["lag_max"] >= 0
    delivery = with_[0]["delivery"]
    assert delivery["connected"] == 3 and with_[0]["api_subscribers"] >= 3
    assert with_[0]["dropped"] >= 0
    # the events flowed to every subscriber (alerts and predictions, from the API's feed)
    assert delivery["received_per_subscriber_min"] > 0, api_log
    assert delivery["received_by_kind"].get("alert", 0) > 0
    assert delivery["received_by_kind"].get("prediction", 0) > 0
    assert delivery["total_per_s"] > 0
    assert live["prediction_p99_ms_with_subscribers"] is not None
