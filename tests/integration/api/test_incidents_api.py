"""``/api/v1/incidents``: incidents seeded through the healing worker's store, read back
with every filter, page by page, and one incident's timeline."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from dharma.sinks.incidents import AlertRow, IncidentRow, TimelineEntry

sys.path.insert(0, str(Path(__file__).parents[1] / "healing"))
from healing_support import write_incidents

pytestmark = pytest.mark.integration

T0 = 1_796_148_000_000  # 2026-12-01T18:00:00Z




@pytest.fixture(scope="module")
def seeded(settings: Any) -> dict[str, Any]:
    """Five incidents on one tagged resource (its root or an alert's source), one with a
    timeline of every kind the worker records."""
    tag = uuid.uuid4().hex[:8]
    db = f"{tag}-db-1"
    statuses = ["open", "resolved", "acknowledged", "resolved", "pending"]
    incidents = [IncidentRow(f"inc-{tag}-{i}", status, T0 + i * 60_000, T0 + i * 60_000,
                             "critical" if i % 2 else "warning", f"incident {i} on {db}",
                             root=db if i != 3 else f"{tag}-web-1", symptoms=[f"{tag}-api-1"])
                 for i, status in enumerate(statuses)]
    alerts = [AlertRow(f"inc-{tag}-3", f"fp-{tag}", db, "threshold", "critical",
                       f"memory on {db}", {"metric": "memory"}, True, T0, T0 + 1000)]
    first = incidents[1].incident_id
    steps: list[tuple[str, int, dict[str, Any]]] = [
        ("alert", T0, {"source": db, "status": "firing", "severity": "critical",
                       "kind": "threshold", "summary": "memory"}),
        ("opened", T0 + 1, {"root_cause": db, "symptoms": [f"{tag}-api-1"],
                            "issue_type": "memory_leak", "confidence": 0.9}),
        ("decision", T0 + 2, {"remediation_id": "r1", "action": "restart_service",
                              "target": db, "playbook": "p@1", "status": "deferred",
                              "guard": "cooldown", "reason": "cooling down"}),
        ("decision", T0 + 3, {"remediation_id": "r1", "action": "restart_service",
                              "target": db, "playbook": "p@1", "status": "requested",
                              "guard": None, "reason": "p@1"}),
        ("executor", T0 + 4, {"remediation_id": "r1", "status": "succeeded", "reason": "ok"}),
        ("verification", T0 + 5, {"remediation_id": "r1", "result": "passed",
                                  "detail": "memory under 80"}),
        ("escalation", T0 + 6, {"target": db, "reason": "twice in an hour"}),
        ("resolved", T0 + 7, {"why": "verified", "mttr_ms": 65_000})]
    timeline = [TimelineEntry(f"{first}:{n}", first, at, kind, detail)
                for n, (kind, at, detail) in enumerate(steps)]
    write_incidents(settings.postgres.dsn.get_secret_value(), incidents, alerts, timeline=timeline)
    return {"tag": tag, "db": db, "ids": [i.incident_id for i in incidents]}


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["incident_id"] for i in response.json()["items"]]


def test_filters_answer_newest_first(reader: httpx.Client, seeded: dict[str, Any]) -> None:
    db, ids = seeded["db"], seeded["ids"]
    # every incident rooted at the resource, or holding an alert of it, newest first
    assert _ids(reader.get("/api/v1/incidents", params={"resource": db})) == ids[::-1]
    assert _ids(reader.get("/api/v1/incidents", params={"resource": db, "status": "resolved"})
                ) == [ids[3], ids[1]]
    assert _ids(reader.get("/api/v1/incidents", params={"resource": db, "severity": "warning"})
                ) == [ids[4], ids[2], ids[0]]
    window = {"resource": db, "since": str(T0 + 60_000), "until": "2026-12-01T18:03:00Z"}
    assert _ids(reader.get("/api/v1/incidents", params=window)) == [ids[2], ids[1]]
    item = reader.get("/api/v1/incidents", params={"resource": db}).json()["items"][-1]
    assert item["title"] == f"incident 0 on {db}" and item["opened_at"] == T0
    assert "published" not in item and "changed" not in item


def test_cursor_walks_every_incident_once(reader: httpx.Client, seeded: dict[str, Any],
                                          walk: Any) -> None:
    pages = walk(reader, "/api/v1/incidents", resource=seeded["db"], limit=2)
    assert [i["incident_id"] for i in pages] == seeded["ids"][::-1]


def test_bad_pages_and_filters_are_4xx(reader: httpx.Client, seeded: dict[str, Any]) -> None:
    db = seeded["db"]
    first = reader.get("/api/v1/incidents", params={"resource": db, "limit": 1}).json()
    cursor = first["next"]
    assert reader.get("/api/v1/incidents", params={"limit": 501}).status_code == 422
    assert reader.get("/api/v1/incidents", params={"limit": 0}).status_code == 422
    forged = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    for bad in (forged, "bm90LWEtY3Vyc29y", "x" * 40):
        answer = reader.get("/api/v1/incidents", params={"resource": db, "cursor": bad})
        assert answer.status_code == 400, answer.text
    # a cursor is bound to its filters: another query cannot continue from it
    assert reader.get("/api/v1/incidents", params={"resource": db, "status": "open",
                                                   "cursor": cursor}).status_code == 400
    for hostile in ({"resource": "x' OR '1'='1"}, {"status": "open;DROP TABLE incidents"},
                    {"since": "yesterday"}, {"until": "2026-12-01T18:00:00"},
                    {"since": "999999999999999"}, {"until": "1969-12-31T23:00:00Z"},
                    {"severity": "x" * 5000}):
        assert reader.get("/api/v1/incidents", params=hostile).status_code == 422, hostile


def test_an_incident_with_its_timeline(reader: httpx.Client, seeded: dict[str, Any]) -> None:
    answer = reader.get(f"/api/v1/incidents/{seeded['ids'][1]}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "resolved" and body["root"] == seeded["db"]
    assert body["alerts"] == [] and body["remediations"] == []
    assert [(e["kind"], e["recorded_as"]) for e in body["timeline"]] == [
        ("note", "alert"), ("root_cause", "opened"), ("guard", "decision"),
        ("action", "decision"), ("action", "executor"), ("verification", "verification"),
        ("escalation", "escalation"), ("status", "resolved")]
    assert body["timeline"][2]["summary"] == (
        f"restart_service on {seeded['db']} (p@1): deferred [cooldown]: cooling down")
    assert body["timeline"][-1] == {"ts": T0 + 7, "kind": "status",
                                    "summary": "verified (MTTR 1m05s)",
                                    "detail": {"why": "verified", "mttr_ms": 65_000},
                                    "recorded_as": "resolved"}
    assert body["timeline_truncated"] is False
    with_alert = reader.get(f"/api/v1/incidents/{seeded['ids'][3]}").json()
    assert [a["source"] for a in with_alert["alerts"]] == [seeded["db"]]


def test_unknown_incident_is_404(reader: httpx.Client) -> None:
    assert reader.get("/api/v1/incidents/inc-nowhere").status_code == 404
    assert reader.get("/api/v1/incidents/inc%27%20OR%201=1").status_code == 422


def test_no_token_no_incidents(api: httpx.Client) -> None:
    assert api.get("/api/v1/incidents").status_code == 401


def test_a_poisoned_timeline_entry_is_shown_as_it_is(reader: httpx.Client,
                                                     settings: Any) -> None:
    """A timeline detail that is not an object (the worker never writes one): shown under
    ``value``, the incident still answers."""
    tag = uuid.uuid4().hex[:8]
    incident = IncidentRow(f"inc-{tag}", "open", T0, T0, "critical", "poisoned")
    write_incidents(settings.postgres.dsn.get_secret_value(), [incident])
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute("INSERT INTO incident_timeline (key, incident_id, at, kind, detail) "
                     "VALUES (%s, %s, %s, 'decision', '[\"{x}\", 1]')",
                     (f"inc-{tag}:odd", f"inc-{tag}", T0))
    answer = reader.get(f"/api/v1/incidents/inc-{tag}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["timeline"] == [{"ts": T0, "kind": "action",
                                          "summary": "value=['{x}', 1]",
                                          "detail": {"value": ["{x}", 1]},
                                          "recorded_as": "decision"}]
