"""``/api/v1/cost``: spend by team and day, the latest forecasts, budgets against the
month's spend and forecast, savings recommendations.

Read from the cost store (:class:`dharma.sinks.costs.CostStore`) and the budgets
(:mod:`dharma.sinks.budgets`).  The estate's scope is ``*`` (as for ``dharma cost
budget --total``), a team's is its name.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from dharma.agents.cost.advisor import store_inputs
from dharma.agents.cost.budgets import DAY_MS, TOTAL, month_of
from dharma.agents.cost.catalogue import load_catalogue
from dharma.agents.cost.recommend import Recommendations, recommend
from dharma.api.queries import Name, Page, StoresDep, Time, answer_503, epoch_ms, paged
from dharma.sinks.budgets import DDL as BUDGETS_DDL
from dharma.sinks.budgets import budgets_of
from dharma.sinks.costs import CostStore, create_tables
from dharma.streams.records import month_start, next_month, now_ms

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["cost"], dependencies=[Depends(answer_503)])

#: Longest span of ``/cost/teams``, and its default; the most (team, day) costs it gives.
MAX_DAYS, DEFAULT_DAYS = 366, 30
MAX_TEAM_DAYS = 50_000
#: How long one computation of the recommendations answers (they change with the
#: hourly rollups, not per request).
RECOMMENDATIONS_TTL_S = 60.0
_STORED_TOTAL = "all"  # the estate's scope value in a stored CostForecast


async def _prepare(conn: Any) -> None:
    await create_tables(conn)
    await conn.execute(BUDGETS_DDL)


def _days(since: int | None, until: int | None) -> tuple[int, int]:
    """``[since, until)`` in whole UTC days (the last 30 by default); 422 beyond a year."""
    hi = until if until is not None else (now_ms() // DAY_MS + 1) * DAY_MS
    lo = since if since is not None else hi - DEFAULT_DAYS * DAY_MS
    lo -= lo % DAY_MS
    if hi <= lo:
        raise HTTPException(422, "until must be after since")
    if hi - lo > MAX_DAYS * DAY_MS:
        raise HTTPException(422, f"at most {MAX_DAYS} days")
    return lo, hi


@router.get("/cost/teams")
async def teams(store: StoresDep, since: Time = None, until: Time = None) -> dict[str, Any]:
    """Spend per team and UTC day starting in ``[since, until)`` (the last 30 days by
    default, a year at most); today's day holds the hours accrued so far.  The first
    50,000 (team, day) costs by team (``truncated`` when there are more)."""
    lo, hi = _days(epoch_ms(since, "since"), epoch_ms(until, "until"))
    async with store.postgres("cost", _prepare) as conn:
        rows = await CostStore.reading(conn).daily_by_team(lo, hi, MAX_TEAM_DAYS + 1)
    out: dict[str, list[dict[str, Any]]] = {}
    for team, day, cost in rows[:MAX_TEAM_DAYS]:
        out.setdefault(team, []).append({"day": day, "cost": cost})
    return {"currency": store.settings.cost.currency, "since": lo, "until": hi,
            "teams": [{"team": t, "days": d} for t, d in out.items()],
            "truncated": len(rows) > MAX_TEAM_DAYS}


def forecast_json(stored: tuple[str, Any]) -> dict[str, Any]:
    """A stored ``CostForecast`` (scope value, record) as the API shows it; a record that
    is not one (a store written by something else) shows as its scope and ``invalid``,
    never as made-up figures."""
    value, record = stored
    scope = TOTAL if value == _STORED_TOTAL else value
    try:
        return {"scope": scope, "made_for": int(record["ts"]),
                "currency": str(record["currency"]), "level": float(record["level"]),
                "month_end_total": float(record["month_end_total"]),
                "points": [{k: float(p[k]) for k in ("day", "mean", "lower", "upper")}
                           for p in record["daily"]]}
    except (KeyError, TypeError, ValueError):
        logger.warning("stored cost forecast is not a CostForecast scope=%s", value)
        return {"scope": scope, "invalid": True, "points": []}


@router.get("/cost/forecasts")
async def forecasts(page: Annotated[Page, Depends(paged(str))], store: StoresDep,
                    scope: Name = None) -> dict[str, Any]:
    """The newest forecast of each scope (``*``: the estate; a team), by scope."""
    stored = _STORED_TOTAL if scope == TOTAL else scope
    after = page.after[0] if page.after else None
    async with store.postgres("cost", _prepare) as conn:
        records = await CostStore.reading(conn).latest_forecasts(stored, after, page.limit + 1)
    return page.result(records, lambda r: (r[0],), forecast_json)


@router.get("/cost/budgets")
async def budgets(page: Annotated[Page, Depends(paged(str))],
                  store: StoresDep) -> dict[str, Any]:
    """Every monthly budget, by scope, against this UTC month: ``actual`` spend so far
    (today's accrued hours included), ``forecast`` the newest forecast's month-end
    total when one was made this month (else null)."""
    now = now_ms()
    month, start, end = month_of(now), month_start(now), next_month(now)
    async with store.postgres("cost", _prepare) as conn:
        rows = await budgets_of(conn, page.after[0] if page.after else None, page.limit + 1)
        costs = CostStore.reading(conn)
        items = {}
        for b in rows[:page.limit]:
            days = await costs.daily(None if b.team == TOTAL else b.team, start, end)
            found = await costs.latest_forecasts(_STORED_TOTAL if b.team == TOTAL else b.team)
            fc = forecast_json(found[0]) if found else {}
            made_this_month = start <= fc.get("made_for", -1) < end
            items[b.team] = {"scope": b.team, "month": month, "amount": b.monthly,
                             "currency": b.currency,
                             "actual": round(sum(c for _, c in days), 2),
                             "forecast": fc["month_end_total"] if made_this_month else None}
    return page.result(rows, lambda b: (b.team,), lambda b: items[b.team])


async def _recommendations(store: StoresDep, at: int | None) -> Recommendations:
    """The recommendations at ``at`` (now when None: computed at most once a minute per
    process)."""
    kept = store.cache("cost.recommendations", RECOMMENDATIONS_TTL_S, size=1)
    if at is None and "now" in kept:
        result: Recommendations = kept["now"]
        return result
    settings, now = store.settings.cost, now_ms() if at is None else at
    catalogue = await asyncio.to_thread(load_catalogue, settings.catalogue)
    async with store.postgres("cost", _prepare) as conn:
        inputs = await store_inputs(CostStore.reading(conn), settings, now)
    result = await asyncio.to_thread(recommend, *inputs, settings, catalogue, now)
    if at is None:
        kept["now"] = result
    return result


@router.get("/cost/recommendations")
async def recommendations(page: Annotated[Page, Depends(paged(float, str))],
                          store: StoresDep, team: Name = None, at: Time = None
                          ) -> dict[str, Any]:
    """Savings recommendations (``CostRecommendation`` records: right-size, non-production
    shutdown, commitments, with evidence), largest monthly savings first, and their sum
    ``potential_savings`` (of every page); as they were ``at`` a time (now by default)."""
    found = await _recommendations(store, epoch_ms(at, "at"))
    items = [r.to_record() for r in found.items if team is None or r.team == team]
    items.sort(key=lambda r: (-r["monthly_savings"], r["prediction_id"]))
    if page.after:
        after = (-page.after[0], page.after[1])
        items = [r for r in items if (-r["monthly_savings"], r["prediction_id"]) > after]
    out = page.result(items[:page.limit + 1],
                      lambda r: (float(r["monthly_savings"]), r["prediction_id"]))
    return {**out, "currency": store.settings.cost.currency,
            "potential_savings": round(sum(r.monthly_savings for r in found.items
                                           if team is None or r.team == team), 2)}
