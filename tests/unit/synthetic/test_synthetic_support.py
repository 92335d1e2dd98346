"""Labels writer, run planning, bad events in the stream, doctests."""

from __future__ import annotations

import csv
import doctest
import importlib
import json
from pathlib import Path

import pytest
from synthetic_support import make_source

from dharma.synthetic import (
    METRICS_TOPIC,
    SyntheticSource,
    plan_run,
    read_labels,
    write_labels,
)


def test_write_and_read_labels(tmp_path: Path) -> None:
    src = make_source()
    for _ in src.ticks(300):
        pass
    paths = write_labels(tmp_path, src.ground_truth(), src.access_truth())
    assert [p.name for p in paths] == ["labels.json", "labels.csv", "access_labels.json"]
    assert read_labels(tmp_path / "labels.json") == src.ground_truth()
    rows = list(csv.DictReader((tmp_path / "labels.csv").open()))
    assert rows[0]["metrics"] == "memory_utilization" and rows[0]["category"] == "memory_leak"
    assert len(json.loads((tmp_path / "access_labels.json").read_text())) > 10


def test_plan_run_ends_now_and_matches_rate() -> None:
    now = 1_750_000_000_000
    src = SyntheticSource(1, 0)
    plan = plan_run(200, 30, now, src.events_per_tick())
    assert plan.start_ms + (plan.ticks - 1) * plan.sample_interval_ms == now
    live = SyntheticSource(
        1, plan.start_ms, plan.sample_interval_ms, day_length_ms=plan.day_length_ms
    )
    events = [e for b in live.ticks(plan.ticks) for e in b]
    assert max(e.value["ts"] for e in events) == now
    assert 0.8 * 200 * 30 <= len(events) <= 1.25 * 200 * 30
    with pytest.raises(ValueError):
        plan_run(0, 30, now, 10)


def test_bad_fraction_injects_flagged_bad_samples() -> None:
    clean = [e for e in make_source().events(limit=20_000) if e.bad_reason]
    dirty = [e for b in make_source(bad_fraction=0.02).ticks(300) for e in b if e.bad_reason]
    assert clean == [] and 80 < len(dirty) < 300
    assert all(e.topic == METRICS_TOPIC for e in dirty)


@pytest.mark.parametrize("module", ["bad", "clock", "source"])
def test_doctests(module: str) -> None:
    mod = importlib.import_module(f"dharma.synthetic.{module}")
    result = doctest.testmod(mod)
    assert result.attempted > 0 and result.failed == 0


def test_plan_source_compressed_demo_shows_day_and_incidents() -> None:
    from dharma.synthetic import plan_source

    now = 1_750_000_000_000
    src, plan = plan_source(7, rate=100, duration_s=60, end_ms=now)
    assert plan.day_length_ms == plan.ticks * plan.sample_interval_ms
    rps = [
        e.value["value"]
        for b in src.ticks(plan.ticks)
        for e in b
        if e.key == "web-server-01" and e.value.get("metric") == "requests_per_second"
    ]
    assert max(rps) > 2 * min(rps)
    assert len(src.ground_truth()) >= 2
    assert all(lb.onset_ms <= now for lb in src.ground_truth())
