"""The detector store's memory is bounded: a cap on series, newcomers forgotten first,
an open episode resolved when its series is forgotten, a detector that fails replaced
without losing the alert episode."""

from __future__ import annotations

from typing import Any

import faust
import pytest
from harness import RecordingEmitter, event_at
from prometheus_client import CollectorRegistry

from dharma.agents.anomaly.logic import (
    Sample,
    ScoreDetail,
    SeriesDetector,
    close_idle_episode,
    make_detector,
)
from dharma.agents.anomaly.state import DetectorStore, SeriesState, detector_table
from dharma.streams.alerting import AlertPolicy, Episode
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import table_key
from dharma.streams.metrics import PipelineMetrics

T0 = 1_700_000_000_000
EVENT: Any = event_at(0, 0)


def store_of(max_series: int = 50_000, **kw: Any) -> tuple[DetectorStore, PipelineMetrics,
                                                            RecordingEmitter]:
    app = faust.App(f"t-store-{id(kw)}", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    metrics, queued = PipelineMetrics(CollectorRegistry()), RecordingEmitter()
    store = DetectorStore(TableWriter(detector_table(app), queued),
                          make_detector, max_series=max_series, metrics=metrics, **kw)
    return store, metrics, queued


def feed(store: DetectorStore, series: str, n: int, start: int = 0) -> SeriesState:
    state = None
    for i in range(start, start + n):
        state, _ = store.observe(series, EVENT, {"value": 50.0 + i % 7,
                                                  "timestamp": T0 + i * 60_000})
    assert state is not None
    return state


def evicted(metrics: PipelineMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "dharma_table_keys_evicted_total", {"table": "detectors", "reason": reason})
    return value or 0.0


def test_at_most_max_series_are_held() -> None:
    store, metrics, _ = store_of(max_series=100)
    for i in range(250):
        feed(store, f"host-{i:04d}|cpu", 1)
    assert len(store) == 100
    assert evicted(metrics, "capacity") == 150.0
    assert next(iter(store.newcomers)) == "host-0150|cpu"  # the least recently used went


def test_a_flood_of_new_series_never_pushes_out_warm_ones() -> None:
    store, _, _ = store_of(max_series=60)
    warm = [f"db-{i:02d}|cpu" for i in range(50)]
    for series in warm:
        feed(store, series, 200)
    assert set(store.live) == set(warm)
    for i in range(5_000):  # one sample each: they churn among the newcomers
        feed(store, f"flood-{i:05d}|cpu", 1)
    assert set(store.live) == set(warm) and len(store) == 60
    assert not feed(store, warm[0], 1, start=200).detector.warming_up


def test_a_warm_series_forgotten_over_the_cap_resolves_its_open_episode() -> None:
    forgotten: list[tuple[str, SeriesState]] = []
    store, metrics, _ = store_of(max_series=2, on_evict=lambda k, s: forgotten.append((k, s)))
    for series in ("web-01|cpu", "web-02|cpu"):
        feed(store, series, 200)
    store.live["web-01|cpu"].value.alert = Episode(
        firing_since=T0, last_sent=T0, peak=0.9, last_ts=T0 + 60_000, source="web-01",
        subject="cpu")
    feed(store, "web-03|cpu", 1)  # no newcomer to forget: the least recently used warm one
    assert [k for k, _ in forgotten] == ["web-01|cpu"]
    alert = close_idle_episode("web-01|cpu", forgotten[0][1].alert, AlertPolicy())
    assert alert is not None and alert["status"] == "resolved"
    assert evicted(metrics, "capacity") == 1.0


def test_a_forgotten_series_takes_its_checkpoint_with_it() -> None:
    store, _, queued = store_of(max_series=1, checkpoint_every_s=0.0)
    feed(store, "web-01|cpu", 3)
    assert store.checkpoint() == 1 and table_key("web-01|cpu") in store.table.data
    feed(store, "web-02|cpu", 1)
    assert table_key("web-01|cpu") not in store.table.data
    assert queued.to("detectors-changelog")[-1] == (table_key("web-01|cpu"), None)  # its tombstone


def test_due_checkpoints_are_written_longest_changed_first_and_at_most_limit() -> None:
    store, _, _ = store_of(checkpoint_every_s=0.0)
    for i in range(10):
        feed(store, f"s{i}|cpu", 1)
    assert store.checkpoint(force={"s9|cpu"}, limit=3) == 4
    assert set(store.table.data) == {table_key(f"s{i}|cpu") for i in (0, 1, 2, 9)}
    assert store.checkpoint(limit=100) == 6 and store.checkpoint() == 0
    feed(store, "s5|cpu", 1, start=1)
    assert store.checkpoint_all() == 1


def test_idle_series_are_forgotten_and_resolved() -> None:
    forgotten: list[str] = []
    store, metrics, _ = store_of(idle_ttl_s=0.0, on_evict=lambda k, s: forgotten.append(k))
    feed(store, "web-01|cpu", 200)
    feed(store, "web-02|cpu", 1)
    assert store.evict_idle() == 2 and len(store) == 0
    assert sorted(forgotten) == ["web-01|cpu", "web-02|cpu"]
    assert evicted(metrics, "idle") == 2.0


def test_a_detector_that_fails_is_replaced_and_its_alert_episode_kept() -> None:
    store, _, _ = store_of()
    state = feed(store, "web-01|cpu", 200)
    state.alert = open_episode = Episode(firing_since=T0, last_sent=T0, peak=0.9,
                                            source="web-01", subject="cpu")

    class Broken(SeriesDetector):
        def score_detail(self, x: Sample) -> ScoreDetail:
            raise ZeroDivisionError("a model bug")

    state.detector = Broken()
    state, detail = store.observe("web-01|cpu", EVENT, {"value": 1.0, "timestamp": T0})
    assert detail.state == "warming_up" and state.alert == open_episode


def test_max_series_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        store_of(max_series=0)
