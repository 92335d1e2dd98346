"""``dharma bench page`` runs end to end in real chromium (tiny sizes; every figure
present and sane, the live events applied by the page; nothing timed against a bound)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dharma.bench.page import TABLE, Sizes, measure
from dharma.bench.page_actions import INTERACTIONS

pytestmark = pytest.mark.integration

SIZES = Sizes(series=200, points=3, decisions=500, rate=100, high_rate=300,
              watch_seconds=3.0, repeats=3, seed=1617)


def _sane_timings(phase: dict[str, Any]) -> None:
    assert phase["events"]["live_open"] is True, phase
    assert phase["frames"]["per_s"] > 0 and phase["long_tasks"]["per_min"] >= 0
    assert phase["long_frames"]["per_min"] >= 0
    frames = phase["frames"]
    assert 0 < frames["gap_p50_ms"] <= frames["gap_p99_ms"] <= frames["gap_max_ms"], frames
    for kind in INTERACTIONS:
        timed = phase[kind]
        assert timed["of"] == SIZES.repeats and timed["shown"] >= 1, (kind, timed)
        assert 0 < timed["p50_ms"] <= timed["p99_ms"] <= timed["max_ms"], (kind, timed)
    assert phase["heap_mb"]["start"] > 0 and phase["heap_mb"]["end"] > 0
    split = phase["main_thread"]
    shares = (split[f"{state}_pct"] for state in ("idle", "script", "native", "gc"))
    assert 99 <= sum(shares) <= 101, split
    assert split["top_scripts_ms"], split  # the page's own functions were seen running


def test_page_bench_measures_idle_and_loaded_phases(
        settings: Any, stack_env: dict[str, str], tmp_path: Path) -> None:
    figures = measure(settings, stack_env, tmp_path, SIZES)
    print(json.dumps(figures, indent=2))
    phases = figures["phases"]
    assert list(phases) == ["idle", "loaded", "high"]
    for phase in phases.values():
        _sane_timings(phase)
    assert phases["idle"]["events"]["sent"] == 0
    for name in ("loaded", "high"):
        events = phases[name]["events"]
        assert set(events["sent_by_kind"]) == {"prediction", "alert", "decision"}, events
        # the page received the load and applied it: events, alerts listed, decisions
        assert events["received"] > 0 and events["received_per_s"] > 0, events
        assert events["dropped"] >= 0
        assert events["alert_rows"] > 0 and events["newest_decision_changed"], events
        # a click on an alert of a resource with incidents opened a timeline
        assert phases[name]["alert_timelines"] >= 1, phases[name]
    assert [row["figure"] for row in figures["page"]] == [label for label, _ in TABLE]
    for row in figures["page"]:
        assert set(row) == {"figure", "idle", "loaded", "high"}, row
    assert figures["seed"]["series"] == SIZES.series
