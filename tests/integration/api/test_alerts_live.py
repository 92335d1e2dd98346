"""``GET /api/v1/alerts`` over the API's feed: alerts produced to the topic show, with their
latest state, filtered and paged; hostile queries are a 4xx."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from live_helpers import Records

pytestmark = pytest.mark.integration


@pytest.fixture
def records(settings: Any) -> Records:
    return Records(settings)


def _alerts(api: httpx.Client, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    answer = api.get("/api/v1/alerts", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_alerts_need_a_token(api: httpx.Client) -> None:
    assert api.get("/api/v1/alerts").status_code == 401


def test_an_alert_shows_its_latest_state_and_filters_apply(
        api: httpx.Client, admin_headers: dict[str, str], records: Records, poll: Any) -> None:
    web, db = f"web-{uuid.uuid4().hex[:6]}", f"db-{uuid.uuid4().hex[:6]}"
    fired = records.alert(web, "firing", "warning", ts=1_000_000)
    resolved = records.alert(web, "resolved", "warning", ts=1_060_000)
    records.alert(db, "firing", "critical", ts=1_030_000)
    records.flush()

    shown = poll(lambda: [a for a in _alerts(api, admin_headers, resource=web)
                          if a["status"] == "resolved"], "the resolved alert shows")
    assert len(shown) == 1
    alert = shown[0]
    assert alert["alert_id"] == resolved["alert_id"] != fired["alert_id"]
    assert (alert["first_seen"], alert["last_seen"]) == (1_000_000, 1_060_000)
    assert alert["resource"] == alert["source"] == web
    assert alert["title"] == alert["summary"] and alert["labels"]["component"] == "anomaly"

    critical = poll(lambda: _alerts(api, admin_headers, resource=db, severity="critical",
                                    status="firing"), "the critical alert shows")
    assert [a["source"] for a in critical] == [db]
    assert _alerts(api, admin_headers, resource=db, severity="info,warning") == []
    assert _alerts(api, admin_headers, resource=db, since="1970-01-01T00:17:20Z") == []
    assert len(_alerts(api, admin_headers, resource=db, until=1_030_000)) == 1


def test_pages_cover_every_alert_once(api: httpx.Client, admin_headers: dict[str, str],
                                      records: Records, poll: Any) -> None:
    source = f"app-{uuid.uuid4().hex[:6]}"
    for n in range(5):
        records.alert(source, subject=f"m{n}", ts=2_000_000 + n * 1000 - (n % 2) * 1000)
    records.flush()
    poll(lambda: len(_alerts(api, admin_headers, resource=source)) == 5, "5 alerts show")

    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"resource": source, "limit": 2,
                                  **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/alerts", params=params, headers=admin_headers).json()
        seen += [(a["ts"], a["fingerprint"]) for a in page["items"]]
        pages, cursor = pages + 1, page["next"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(seen, key=lambda k: (-k[0], k[1])) and len(set(seen)) == 5


@pytest.mark.parametrize("params", [
    {"limit": 100_000}, {"limit": 0}, {"status": "open"}, {"severity": "critical' OR 1=1 --"},
    {"since": "yesterday"}, {"until": "2026-12-01T18:00:00"}, {"resource": "x" * 1000},
    {"since": "0000-01-01T00:00Z"}, {"until": "2026-02-30T00:00Z"}, {"since": "9" * 16},
    {"cursor": "not a cursor!"},
])
def test_hostile_queries_are_refused_with_a_422(
        api: httpx.Client, admin_headers: dict[str, str], params: dict[str, Any]) -> None:
    assert api.get("/api/v1/alerts", params=params, headers=admin_headers).status_code == 422


@pytest.mark.parametrize("cursor", ["AAAA", "W10", "eyJhIjoxfQ", "WyJ4IiwxXQ"])
def test_a_forged_cursor_is_a_400(api: httpx.Client, admin_headers: dict[str, str],
                                  cursor: str) -> None:
    answer = api.get("/api/v1/alerts", params={"cursor": cursor}, headers=admin_headers)
    assert answer.status_code == 400, answer.text
