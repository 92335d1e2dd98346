"""``/api/v1/cost``: cost rows, forecasts, budgets and utilisation written through the
cost worker's stores, read back as spend by team and day, forecasts, budgets against
the month, and recommendations.

Each module's teams are its own, and its stored days lie in 2033, so that the rows of
other tests never enter its windows.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from dharma.agents.cost.budgets import month_of
from dharma.sinks.budgets import set_budget
from dharma.sinks.costs import CostRow, UsageRow, connect_store
from dharma.streams.records import month_start, now_ms

pytestmark = pytest.mark.integration

HOUR = 3_600_000
DAY = 24 * HOUR
D0 = 1_995_926_400_000  # 2033-04-01T00:00:00Z
AT = 1_930_867_200_000  # Monday 2031-03-10 00:00 UTC (the recommendation rules' week)


def _row(rid: str, team: str, start: int, cost: float, granularity: str = "day",
         env: str = "prod", itype: str = "m5.large", rate: float = 0.096) -> CostRow:
    length = HOUR if granularity == "hour" else DAY
    return CostRow(rid, rid, "app", start, start + length, granularity, Decimal(str(cost)),
                   "USD", "shop", "eu", "aws", team, env, itype, rate, 0.0)


def _forecast(scope: str, team: str, ts: int, month_end: float) -> dict[str, Any]:
    return {"prediction_id": f"fc-{uuid.uuid4().hex}", "ts": ts, "kind": "cost_forecast",
            "scope": scope, "scope_value": team, "currency": "USD", "level": 95.0,
            "daily": [{"day": ts + i * DAY, "mean": 10.0 + i, "lower": 8.0 + i,
                       "upper": 12.0 + i} for i in range(3)],
            "month_end_total": month_end}


async def _write(dsn: str, rows: list[CostRow], usage: list[UsageRow],
                 forecasts: list[dict[str, Any]]) -> None:
    store = await connect_store(dsn)
    try:
        await store.write(rows)
        await store.record_usage(usage)
        await store.save_forecasts(forecasts)
    finally:
        await store.close()


def _recommendable(team: str) -> tuple[list[CostRow], list[UsageRow]]:
    """An oversized prod app (10 % busy) and an idle dev web server, 30 steady days
    before ``AT``: a right-size, a shutdown and a commitment."""
    app_id, web_id = f"{team}-app", f"{team}-web"
    days = [AT - (i + 1) * DAY for i in range(30)]
    app: dict[str, Any] = {"itype": "m5.4xlarge", "rate": 0.768}
    web: dict[str, Any] = {"env": "dev", "itype": "t3.medium", "rate": 0.0416}
    rows = [_row(app_id, team, d, 0.768 * 24, **app) for d in days]
    rows += [_row(web_id, team, d, 0.0416 * 24, **web) for d in days]
    rows += [_row(app_id, team, AT - HOUR, 0.768, "hour", **app),
             _row(web_id, team, AT - HOUR, 0.0416, "hour", **web)]
    hours = [AT - (i + 1) * HOUR for i in range(14 * 24)]
    usage = [UsageRow(app_id, m, h, 10.0) for h in hours[:48]
             for m in ("cpu_utilization", "memory_utilization")]
    usage += [UsageRow(web_id, "cpu_utilization", h,
                       60.0 if (h // DAY + 3) % 7 < 5 and 8 <= h // HOUR % 24 < 19 else 3.0)
              for h in hours]
    return rows, usage


@pytest.fixture(scope="module")
def seeded(settings: Any) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    web, data, budgeted = f"web-{tag}", f"data-{tag}", f"pay-{tag}"
    rows = [_row(f"{web}-1", web, D0 + d * DAY, 10.0 + d) for d in range(3)]
    rows += [_row(f"{web}-2", web, D0 + d * DAY, 1.0) for d in range(3)]
    rows += [_row(f"{data}-1", data, D0 + DAY, 7.5)]
    this_month = month_start(now_ms())
    rows += [_row(f"{budgeted}-1", budgeted, this_month + d * DAY, 100.0) for d in range(2)]
    more, usage = _recommendable(f"rec-{tag}")
    forecasts = [_forecast("team", web, D0, 300.0), _forecast("team", web, D0 - DAY, 1.0),
                 _forecast("team", data, D0, 50.0), _forecast("total", "all", D0, 999.0),
                 _forecast("team", budgeted, this_month, 1234.5)]
    dsn = settings.postgres.dsn.get_secret_value()
    asyncio.run(_write(dsn, rows + more, usage, forecasts))
    set_budget(dsn, budgeted, 500.0, "USD", "test")
    return {"tag": tag, "web": web, "data": data, "budgeted": budgeted, "rec": f"rec-{tag}"}


def test_spend_by_team_and_day(reader: httpx.Client, seeded: dict[str, Any]) -> None:
    answer = reader.get("/api/v1/cost/teams", params={
        "since": str(D0), "until": "2033-04-03T00:00:00Z"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["currency"] == "USD" and (body["since"], body["until"]) == (D0, D0 + 2 * DAY)
    assert body["teams"] == [{"team": seeded["data"], "days": [{"day": D0 + DAY, "cost": 7.5}]},
                             {"team": seeded["web"], "days": [{"day": D0, "cost": 11.0},
                                                              {"day": D0 + DAY, "cost": 12.0}]}]
    assert body["truncated"] is False
    for bad in ({"since": str(D0), "until": str(D0 + 400 * DAY)},
                {"since": str(D0), "until": str(D0)}, {"since": "2033-04-01"},
                {"since": "999999999999990", "until": "999999999999999"}):
        assert reader.get("/api/v1/cost/teams", params=bad).status_code == 422, bad


def test_newest_forecast_of_each_scope(reader: httpx.Client, seeded: dict[str, Any],
                                       walk: Any) -> None:
    web = reader.get("/api/v1/cost/forecasts", params={"scope": seeded["web"]}).json()
    assert web["next"] is None and len(web["items"]) == 1
    item = web["items"][0]
    assert (item["scope"], item["made_for"], item["month_end_total"]) == (
        seeded["web"], D0, 300.0)
    assert item["points"][0] == {"day": D0, "mean": 10.0, "lower": 8.0, "upper": 12.0}
    estate = reader.get("/api/v1/cost/forecasts", params={"scope": "*"}).json()["items"]
    assert [(f["scope"], f["month_end_total"]) for f in estate] == [("*", 999.0)]
    scopes = [f["scope"] for f in walk(reader, "/api/v1/cost/forecasts", limit=1)]
    assert len(scopes) == len(set(scopes)) and {seeded["web"], seeded["data"]} <= set(scopes)


def test_budgets_against_the_month(reader: httpx.Client, seeded: dict[str, Any],
                                   walk: Any) -> None:
    found = [b for b in walk(reader, "/api/v1/cost/budgets", limit=1)
             if b["scope"] == seeded["budgeted"]]
    assert len(found) == 1
    budget = found[0]
    assert (budget["amount"], budget["actual"], budget["forecast"]) == (500.0, 200.0, 1234.5)
    assert budget["month"] == month_of(now_ms()) and budget["currency"] == "USD"


def test_recommendations_largest_savings_first(reader: httpx.Client, seeded: dict[str, Any],
                                               walk: Any) -> None:
    params = {"team": seeded["rec"], "at": str(AT)}
    whole = reader.get("/api/v1/cost/recommendations", params=params).json()
    types = [r["type"] for r in whole["items"]]
    assert sorted(types) == ["commitment", "right_size", "schedule_shutdown"]
    savings = [r["monthly_savings"] for r in whole["items"]]
    assert savings == sorted(savings, reverse=True)
    assert whole["potential_savings"] == round(sum(savings), 2)
    resize = next(r for r in whole["items"] if r["type"] == "right_size")
    assert (resize["subject"], resize["proposed"]) == (f"{seeded['rec']}-app", "m5.large")
    paged = walk(reader, "/api/v1/cost/recommendations", limit=1, **params)
    assert paged == whole["items"]
    assert reader.get("/api/v1/cost/recommendations", params={
        "team": seeded["web"], "at": str(AT)}).json()["items"] == []


def test_a_poisoned_forecast_is_shown_invalid_never_a_500(reader: httpx.Client,
                                                          settings: Any) -> None:
    """Records in ``cost_forecasts`` that are not forecasts (written by anything but the
    cost worker): the endpoints still answer, with no figure made up."""
    team = f"poison-{uuid.uuid4().hex[:8]}"
    dsn = settings.postgres.dsn.get_secret_value()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n, record in enumerate(('{"ts": "x", "daily": 3}', "[1, 2]", '"text"')):
            conn.execute("INSERT INTO cost_forecasts (prediction_id, scope_value, ts, record) "
                         "VALUES (%s, %s, now() + %s * interval '1 second', %s)",
                         (f"{team}-{n}", team, n, record))
    set_budget(dsn, team, 10.0, "USD", "test")
    answer = reader.get("/api/v1/cost/forecasts", params={"scope": team})
    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == [{"scope": team, "invalid": True, "points": []}]
    budget = [b for b in reader.get("/api/v1/cost/budgets", params={"limit": 500}).json()["items"]
              if b["scope"] == team]
    assert budget[0]["forecast"] is None and budget[0]["actual"] == 0
