"""Properties of the live views: rings hold the newest points, views stay bounded,
pages cover each item once, dead-letter reasons are bounded."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from dharma.api.series_view import Point, SeriesRing, SeriesView, point_of
from dharma.api.views import OTHER_REASONS, AlertsView, DeadLetterView

flags = st.lists(st.booleans(), max_size=60)


@given(capacity=st.integers(1, 20), anomalies=flags)
def test_a_ring_holds_the_newest_points_in_order(capacity: int, anomalies: list[bool]) -> None:
    ring = SeriesRing(capacity)
    for ts, anomaly in enumerate(anomalies):
        ring.append(ts, float(ts), 0.5, None if ts % 3 else 1.0, anomaly)
    kept = list(range(len(anomalies)))[-capacity:]
    points = ring.points()
    assert [p["ts"] for p in points] == kept
    assert [p["value"] for p in points] == [float(ts) for ts in kept]
    assert ring.anomalies == sum(anomalies[ts] for ts in kept) == sum(p["anomaly"] for p in points)
    assert all(p["expected"] == (None if p["ts"] % 3 else 1.0) for p in points)
    if kept:
        assert ring.last()[0] == kept[-1]


@given(times=st.lists(st.integers(0, 50), max_size=40))
def test_a_late_or_repeated_point_is_held_once_in_time_order(times: list[int]) -> None:
    view = SeriesView(capacity=100, max_series=10, warmup_needed=10)
    for ts in times:
        view.add_point(Point("s", "m", ts, 1.0, 0.1, None, False, False, 1.0))
    detail = view.detail("s|m")
    held = [p["ts"] for p in detail["points"]] if detail else []
    assert held == sorted(set(times))
    assert view.duplicates == len(times) - len(set(times))


@given(keys=st.lists(st.integers(0, 30), max_size=80), limit=st.integers(1, 8))
def test_series_are_bounded_and_pages_cover_each_once(keys: list[int], limit: int) -> None:
    view = SeriesView(capacity=4, max_series=10, warmup_needed=10)
    for ts, key in enumerate(keys):
        view.add_point(Point(f"r{key:02d}", "m", ts, 1.0, 0.1, None, False, False, 1.0))
    recent = list(dict.fromkeys(reversed(keys)))[:10]  # the 10 most recently updated
    assert sorted(s["resource"] for s in view.summaries()) == sorted(f"r{k:02d}" for k in recent)
    seen: list[str] = []
    after = None
    while page := view.summaries(after=after, limit=limit):
        seen += [s["series_id"] for s in page]
        after = page[-1]["series_id"]
    assert seen == sorted(f"r{k:02d}|m" for k in recent)


def test_non_finite_values_are_null_and_warm_up_is_a_share_of_the_needed() -> None:
    view = SeriesView(capacity=4, max_series=10, warmup_needed=150)
    view.add_point(Point("s", "m", 1, math.inf, math.nan, math.nan, False, True, 0.4))
    detail = view.detail("s|m")
    assert detail is not None
    assert detail["warmup"] == {"warm": False, "seen": 60, "needed": 150}
    point = detail["points"][0]
    assert (point["value"], point["score"], point["expected"]) == (None, None, None)


alert_events = st.lists(st.tuples(st.integers(0, 12), st.sampled_from(["firing", "resolved"]),
                                  st.integers(0, 5)), max_size=60)


def _alert(key: int, status: str, ts: int) -> dict[str, object]:
    return {"fingerprint": f"f{key}", "alert_id": f"a{key}-{ts}", "status": status,
            "severity": "warning", "source": f"r{key % 3}", "summary": "s", "ts": ts}


@given(events=alert_events, limit=st.integers(1, 5))
def test_alerts_keep_the_latest_per_fingerprint_bounded_and_page_once(
        events: list[tuple[int, str, int]], limit: int) -> None:
    view = AlertsView(max_alerts=8)
    latest: dict[int, tuple[str, int]] = {}
    for key, status, ts in events:
        view.add(_alert(key, status, ts))
        latest.pop(key, None)
        latest[key] = (status, ts)
    held = dict(list(latest.items())[-8:])
    everything = view.query()
    assert {a["fingerprint"]: (a["status"], a["ts"]) for a in everything} == {
        f"f{k}": v for k, v in held.items()}
    assert len(view) == len(held) <= 8
    assert [(-a["ts"], a["fingerprint"]) for a in everything] == sorted(
        (-a["ts"], a["fingerprint"]) for a in everything)
    paged, after = [], None
    while page := view.query(after=after, limit=limit):
        paged += page
        after = (page[-1]["ts"], page[-1]["fingerprint"])
    assert paged == everything
    firing = view.query(status="firing", resource="r1")
    assert all(a["status"] == "firing" and a["source"] == "r1" for a in firing)


def test_first_seen_restarts_with_a_new_episode() -> None:
    view = AlertsView(max_alerts=4)
    for status, ts in [("firing", 10), ("firing", 20), ("resolved", 30), ("firing", 40)]:
        view.add(_alert(1, status, ts))
    (alert,) = view.query()
    assert (alert["first_seen"], alert["last_seen"]) == (40, 40)


@given(reasons=st.lists(st.text(max_size=300), max_size=50))
def test_dead_letter_reasons_are_bounded_and_every_letter_counted(reasons: list[str]) -> None:
    view = DeadLetterView(max_reasons=5)
    for reason in reasons:
        view.add("metrics.raw", {"error_kind": "undecodable", "reason": reason})
    rows = view.rows()
    assert sum(r["count"] for r in rows) == len(reasons)
    assert len([r for r in rows if r["reason"] != OTHER_REASONS]) <= 5
    assert all(len(r["reason"]) <= 200 for r in rows)


def test_a_prediction_s_expected_band_is_kept_and_served() -> None:
    record = {"source": "web-01", "metric": "cpu", "ts": 5, "value": 97.0,
              "anomaly_score": 0.99, "expected": 40.0, "lower": 34.0, "upper": 46.0,
              "is_anomaly": True, "warming_up": False, "confidence": 1.0}
    view = SeriesView(capacity=4, max_series=4, warmup_needed=150)
    view.add_point(point_of(record))
    view.add_point(point_of({**record, "ts": 6, "lower": None, "upper": None}))
    detail = view.detail("web-01|cpu")
    assert detail is not None
    banded, bare = detail["points"]
    assert (banded["lower"], banded["expected"], banded["upper"]) == (34.0, 40.0, 46.0)
    assert (bare["lower"], bare["upper"]) == (None, None)  # a prediction without a band
