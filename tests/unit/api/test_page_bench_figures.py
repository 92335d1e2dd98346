"""``dharma bench page``'s figures from the probe's readings (no browser, no stack)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from dharma.bench.page import TABLE, summarise, table


def reading(received: int = 0, dropped: int = 0, **changes: Any) -> dict[str, Any]:
    """What the in-page probe's ``figures()`` answers."""
    return {"longTasks": [], "longFrames": [], "gaps": [16.7] * 100, "liveStates": ["open"],
            "liveState": "open", "received": received, "dropped": dropped,
            "heap": 4 * 1024 * 1024, "alertsCount": "3 firing, 1 resolved", "alertRows": 4,
            "firstDecision": "d1", **changes}


def outcomes(ms: float | None, n: int = 4) -> dict[str, list[dict[str, Any] | None]]:
    shown = None if ms is None else {"ms": ms, "detail": "incident-timeline"}
    return {"search": [shown] * n, "series": [shown] * n,
            "alert": [shown, {"ms": ms or 1.0, "detail": "incident-none"}] * (n // 2)}


def test_rates_are_per_minute_and_counters_are_the_phase_s_own() -> None:
    after = reading(received=1_300, dropped=5, longTasks=[60.0, 90.0],
                    longFrames=[{"ms": 80.0, "scriptMs": 10.0, "renderMs": 30.0}],
                    firstDecision="d2", heap=None)
    phase = summarise(100, reading(received=100, dropped=2), after, outcomes(40.0),
                      Counter(prediction=1_080, alert=60, decision=60), seconds=30.0)
    assert phase["events"] == {
        "sent": 1_200, "sent_by_kind": {"prediction": 1_080, "alert": 60, "decision": 60},
        "received": 1_200, "received_per_s": 40.0, "dropped": 3, "live_open": True,
        "alert_rows": 4, "alerts_count": "3 firing, 1 resolved",
        "newest_decision_changed": True}
    assert phase["long_tasks"] == {"per_min": 4.0, "ms_per_min": 300, "max_ms": 90.0}
    assert phase["long_frames"] == {"per_min": 2.0, "script_ms_per_min": 20,
                                    "render_ms_per_min": 60}
    assert phase["frames"]["per_s"] == round(100 / 30, 1)
    assert phase["search"]["shown"] == phase["search"]["of"] == 4
    assert phase["alert_timelines"] == 2
    assert phase["heap_mb"] == {"start": 4.0, "end": None}


def test_a_stream_that_left_open_at_any_moment_is_not_open() -> None:
    after = reading(liveStates=["open", "retrying", "connecting", "open"])
    phase = summarise(0, reading(), after, outcomes(30.0), Counter(), seconds=10.0)
    assert phase["events"]["live_open"] is False


def test_interactions_that_never_showed_count_but_have_no_timing() -> None:
    phase = summarise(0, reading(), reading(), outcomes(None), Counter(), seconds=10.0)
    assert phase["search"] == {"shown": 0, "of": 4, "p50_ms": None, "p99_ms": None,
                               "max_ms": None, "mean_ms": None}


def test_the_table_puts_phases_side_by_side() -> None:
    split = {"idle_pct": 90.0, "script_pct": 2.0, "native_pct": 7.5, "gc_pct": 0.5}
    phases = {name: {**summarise(rate, reading(), reading(received=rate * 10), outcomes(30.0),
                                 Counter(prediction=rate * 10), seconds=10.0),
                     "main_thread": split}
              for name, rate in (("idle", 0), ("loaded", 100))}
    rows = table(phases)
    assert [row["figure"] for row in rows] == [label for label, _ in TABLE]
    by_figure = {row["figure"]: row for row in rows}
    assert by_figure["events received /s by the page"] == {
        "figure": "events received /s by the page", "idle": 0.0, "loaded": 100.0}
    split_row = by_figure["main thread idle / script / native / GC %"]
    assert split_row["loaded"] == "90.0 / 2.0 / 7.5 / 0.5"
