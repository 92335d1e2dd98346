"""``GET /api/v1/series`` and ``/series/{id}/points`` over the API's feed: scored samples
produced to ``ml.predictions`` show as series with their points, anomalies and warm-up."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from live_helpers import Records, now_ms

pytestmark = pytest.mark.integration

MINUTE_MS = 60_000


@pytest.fixture
def records(settings: Any) -> Records:
    return Records(settings)


def _get(api: httpx.Client, headers: dict[str, str], path: str, **params: Any) -> Any:
    answer = api.get(path, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_scored_series_shows_its_points_anomaly_and_warm_up(
        api: httpx.Client, admin_headers: dict[str, str], records: Records, poll: Any) -> None:
    source = f"web-{uuid.uuid4().hex[:6]}"
    start = now_ms() - 10 * MINUTE_MS
    for n in range(10):
        records.prediction(source, "cpu", start + n * MINUTE_MS, 40.0 + n, score=0.9 if n == 7
                           else 0.1, anomaly=n == 7, expected=40.0 if n else None)
    records.prediction(source, "mem", start, float("nan"), warming_up=True, confidence=0.2)
    records.flush()

    def both() -> list[dict[str, Any]] | None:  # two keys: they may arrive one at a time
        items = _get(api, admin_headers, "/api/v1/series", q=source.upper())["items"]
        return items if len(items) == 2 else None

    listed = poll(both, "both series show", describe=lambda: "not both listed")
    assert [s["series_id"] for s in listed] == [f"{source}|cpu", f"{source}|mem"]
    cpu = listed[0]
    assert (cpu["resource"], cpu["metric"], cpu["anomalous"], cpu["warm"]) == (
        source, "cpu", True, True)
    assert (cpu["last_ts"], cpu["last_value"]) == (start + 9 * MINUTE_MS, 49.0)
    anomalous = _get(api, admin_headers, "/api/v1/series", q=source, anomalous="true")["items"]
    assert [s["metric"] for s in anomalous] == ["cpu"]

    detail = _get(api, admin_headers, f"/api/v1/series/{source}|cpu/points")
    assert detail["warmup"] == {"warm": True, "seen": 150, "needed": 150}
    points = detail["points"]
    assert [p["ts"] for p in points] == [start + n * MINUTE_MS for n in range(10)]
    assert [p["anomaly"] for p in points].index(True) == 7 and points[7]["score"] > 0.5
    assert points[0]["expected"] is None and points[1]["expected"] == 40.0
    assert points[1]["lower"] is None and points[1]["upper"] is None  # no band in the records
    since = _get(api, admin_headers, f"/api/v1/series/{source}|cpu/points",
                 since=start + 8 * MINUTE_MS)["points"]
    assert len(since) == 2

    warming = _get(api, admin_headers, f"/api/v1/series/{source}|mem/points")
    assert warming["warmup"] == {"warm": False, "seen": 30, "needed": 150}
    assert warming["points"][0]["value"] is None  # NaN is not JSON


def test_series_pages_and_unknown_series(api: httpx.Client, admin_headers: dict[str, str],
                                         records: Records, poll: Any) -> None:
    source = f"pg-{uuid.uuid4().hex[:6]}"
    for metric in ("a", "b", "c"):
        records.prediction(source, metric, now_ms(), 1.0)
    records.flush()
    poll(lambda: len(_get(api, admin_headers, "/api/v1/series", q=source)["items"]) == 3,
         "3 series show")
    first = _get(api, admin_headers, "/api/v1/series", q=source, limit=2)
    second = _get(api, admin_headers, "/api/v1/series", q=source, limit=2, cursor=first["next"])
    assert [s["metric"] for s in first["items"] + second["items"]] == ["a", "b", "c"]
    assert second["next"] is None
    missing = api.get(f"/api/v1/series/{source}|nope/points", headers=admin_headers)
    assert missing.status_code == 404
    assert api.get("/api/v1/series", params={"anomalous": "maybe"},
                   headers=admin_headers).status_code == 422
