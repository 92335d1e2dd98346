"""``/api/v1/decisions``: audit rows appended through the trust worker's audit sink,
read back by user, resource, decision and time, page by page, and summarised."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from dharma.sinks.audit import DECISION_PAGE, AuditSink, audit_row

pytestmark = pytest.mark.integration

#: A window of its own (2020-01-01T00:00:00Z): no other test decides anything then.
T0 = 1_577_836_800_000
MIN = 60_000


def _decision(tag: str, n: int, decision: str, ts: int, user: str,
              reasons: list[str]) -> dict[str, Any]:
    return {"decision_id": f"dec-{tag}-{n}", "event_id": f"evt-{tag}-{n}", "ts": ts,
            "user_id": user, "device_id": "dev-1", "resource": f"db/{tag}/{n % 2}",
            "action": "read", "decision": decision, "trust_score": 0.5, "trust_level": "low",
            "policy_id": "p", "policy_version": "1", "reasons": reasons,
            "session_id": None}


@pytest.fixture(scope="module")
def seeded(settings: Any) -> dict[str, Any]:
    """Twelve decisions of two users over twelve minutes: ALLOW, DENY, CHALLENGE and
    REVOKE, DENYs for two reasons."""
    tag = uuid.uuid4().hex[:8]
    kinds = ["ALLOW", "DENY", "CHALLENGE", "DENY", "ALLOW", "REVOKE"] * 2
    rows = []
    for n, kind in enumerate(kinds):
        reasons = (["impossible_travel", "low_trust"] if n % 4 == 1
                   else [f"low_trust: score {40 + n}"]) if kind == "DENY" else []
        decision = _decision(tag, n, kind, T0 + n * MIN + 123, f"u-{tag}-{n % 2}", reasons)
        rows.append(audit_row(decision, {"source_ip": "10.1.2.3"}))

    async def go() -> None:
        sink = AuditSink(settings.postgres.dsn.get_secret_value())
        await sink.setup()
        try:
            await sink.append(rows)
        finally:
            await sink.close()

    asyncio.run(go())
    return {"tag": tag, "kinds": kinds, "ids": [r["decision_id"] for r in rows]}


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["decision_id"] for i in response.json()["items"]]


def test_filters_answer_newest_first(reader: httpx.Client, seeded: dict[str, Any]) -> None:
    tag, ids = seeded["tag"], seeded["ids"]
    user0 = {"user": f"u-{tag}-0"}
    assert _ids(reader.get("/api/v1/decisions", params=user0)) == ids[0::2][::-1]
    assert _ids(reader.get("/api/v1/decisions", params={"resource": f"db/{tag}/1"})
                ) == ids[1::2][::-1]
    assert _ids(reader.get("/api/v1/decisions", params={**user0, "decision": "CHALLENGE"})
                ) == [ids[8], ids[2]]
    window = {**user0, "since": str(T0 + 2 * MIN), "until": "2020-01-01T00:06:00Z"}
    assert _ids(reader.get("/api/v1/decisions", params=window)) == [ids[4], ids[2]]
    row = reader.get("/api/v1/decisions", params={**user0, "limit": 1}).json()["items"][0]
    assert row["ts"] == T0 + 10 * MIN + 123 and row["decision"] == "ALLOW"
    assert row["inputs"] == {"source_ip": "10.1.2.0/24"}  # masked as stored
    assert "ts_us" not in row


def test_cursor_walks_every_row_once(reader: httpx.Client, seeded: dict[str, Any],
                                     walk: Any) -> None:
    pages = walk(reader, "/api/v1/decisions", since=str(T0), until=str(T0 + 12 * MIN), limit=5)
    assert [r["decision_id"] for r in pages] == seeded["ids"][::-1]


def test_summary_buckets_reasons_and_revocations(reader: httpx.Client,
                                                 seeded: dict[str, Any]) -> None:
    answer = reader.get("/api/v1/decisions/summary", params={
        "since": str(T0), "until": str(T0 + 12 * MIN), "bucket_s": 240})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["buckets"] == [
        {"ts": T0, "ALLOW": 1, "DENY": 2, "CHALLENGE": 1},
        {"ts": T0 + 4 * MIN, "ALLOW": 2, "DENY": 1, "CHALLENGE": 0},
        {"ts": T0 + 8 * MIN, "ALLOW": 1, "DENY": 1, "CHALLENGE": 1}]
    # each DENY once, by its first reason's kind (the details differ)
    assert body["deny_reasons"] == [{"reason": "impossible_travel", "count": 2},
                                    {"reason": "low_trust", "count": 2}]
    assert body["revocations"] == 2
    empty = reader.get("/api/v1/decisions/summary", params={
        "since": str(T0 - 10 * MIN), "until": str(T0), "bucket_s": 300}).json()
    assert [b["ALLOW"] + b["DENY"] + b["CHALLENGE"] for b in empty["buckets"]] == [0, 0]
    assert empty["deny_reasons"] == [] and empty["revocations"] == 0


def test_unbounded_or_hostile_queries_are_4xx(reader: httpx.Client,
                                             seeded: dict[str, Any]) -> None:
    for params in ({"limit": 100_000}, {"decision": "allow"}, {"user": "a' OR 1=1 --"},
                   {"resource": "db/%"}, {"since": "1e20"}, {"cursor": "%%%"}):
        assert reader.get("/api/v1/decisions", params=params).status_code == 422, params
    windows: list[dict[str, Any]] = [
        {"since": str(T0), "until": str(T0 + 365 * 86_400_000)},
        {"since": str(T0), "until": str(T0 + 86_400_000), "bucket_s": 1},
        {"since": str(T0), "until": str(T0 - 1)}, {"bucket_s": 0}]
    for params in windows:
        answer = reader.get("/api/v1/decisions/summary", params=params)
        assert answer.status_code == 422, (params, answer.text)
    page = reader.get("/api/v1/decisions", params={"user": f"u-{seeded['tag']}-0",
                                                   "limit": 1}).json()
    other = {"user": f"u-{seeded['tag']}-1", "cursor": page["next"]}
    assert reader.get("/api/v1/decisions", params=other).status_code == 400


@pytest.mark.parametrize("only", [{}, {"user": "u"}, {"resource": "r"}, {"decision": "DENY"},
                                  {"since": 0}])
def test_each_filter_reads_an_index_in_order(settings: Any, seeded: dict[str, Any],
                                             only: dict[str, Any]) -> None:
    """No page sorts the rows it filtered: an index gives them newest first (with
    100,000 rows, a sort of every row was 48 ms a page)."""
    params: dict[str, Any] = {"user": None, "resource": None, "decision": None, "since": None,
                              "until": None, "after": None, "after_id": None, "limit": 101}
    params.update(only)
    if "since" in only:
        params["since"] = datetime.fromtimestamp(T0 / 1000, UTC)
    query = sql.SQL("EXPLAIN (FORMAT JSON) " + DECISION_PAGE).format(
        table=sql.Identifier("access_audit"))
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        # as with many rows (the few here would be scanned and sorted)
        conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        (plan,), = conn.execute(query, params).fetchall()

    def nodes(node: dict[str, Any]) -> list[str]:
        return [node["Node Type"], *(n for child in node.get("Plans", []) for n in nodes(child))]

    kinds = nodes(plan[0]["Plan"])
    assert "Sort" not in kinds and any(k.startswith("Index") for k in kinds), kinds
