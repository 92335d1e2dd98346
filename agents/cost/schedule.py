"""The cost worker's schedule: forecasts, recommendations, budget and cost-anomaly
alerts, recomputed from the stored rollups every ``DHARMA_COST_SCHEDULE_S`` (never per
event), on one worker of the topology (Faust's leader).

One run at ``now``:

1. daily spend per scope (each team, and the estate as :data:`~.budgets.TOTAL`) over
   the last ``DHARMA_COST_HISTORY_DAYS`` days: the complete ones (a day without rows
   spent nothing) and today's accrued hours (budgets count them);
2. the recommendations (:mod:`.advisor`), published as ``CostRecommendation`` records;
3. per scope, a forecast of the next ``DHARMA_COST_HORIZON_DAYS`` days fitted on the
   complete days, summarised as the seed's response (month total, trend, peak days,
   the scope's potential savings) and published as a ``CostForecast`` record;
4. budget alerts (actual spend of the month so far; its end: actual complete days plus
   the forecast's means to the month's end) and cost-anomaly alerts (each complete day
   against the interval the forecast made before it), published on
   ``alerts.notifications`` and then stored, so a restart fires nothing twice;
5. the new forecasts stored, for the anomalies of the days they cover.

Every record's id is derived from what it says (scope and day), so a run repeated
after a crash publishes the same records again (at least once), never different ones.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dharma.agents.cost.advisor import recommendations
from dharma.agents.cost.budgets import (
    TOTAL,
    Budget,
    Interval,
    alert_state,
    cost_anomalies,
    evaluate_budgets,
    intervals_by_scope,
)
from dharma.agents.cost.catalogue import Catalogue
from dharma.agents.cost.forecast import MIN_POINTS, forecast, summarise, to_record
from dharma.agents.cost.logic import DAY_MS
from dharma.sinks.budgets import BudgetStore
from dharma.sinks.costs import CostStore
from dharma.streams.records import month_start
from dharma.streams.settings import CostSettings

logger = logging.getLogger(__name__)

__all__ = ["Planner", "Run"]

FORECAST_BRANCH = "dharma.predictions.CostForecast"
#: Days back a forecast record lists as anomalies.
ANOMALY_DAYS = 30
_NAMESPACE = uuid.UUID("6f1d9a4e-2b7c-4e0a-9c1d-3f5a7b9c0e21")
RECOMMENDATION_BRANCH = "dharma.predictions.CostRecommendation"


@dataclass
class Run:
    """What one run published."""

    forecasts: list[dict[str, Any]] = field(default_factory=list)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Planner:
    """One run of the schedule (see the module docstring)."""

    costs: CostStore
    budgets: BudgetStore
    settings: CostSettings
    catalogue: Catalogue
    predict: Callable[[str, dict[str, Any]], None]  # (union branch, record)
    alert: Callable[[dict[str, Any]], None]

    async def run(self, now: int) -> Run:
        """Compute and publish (see the module docstring); :meth:`keep` stores it."""
        out = Run()
        today = now - now % DAY_MS
        since = today - self.settings.history_days * DAY_MS
        teams = await self.costs.teams(since, today + DAY_MS)
        scopes: dict[str, str | None] = {TOTAL: None, **{t: t for t in teams}}
        spend = {scope: await self.costs.daily(team, since, today + DAY_MS)
                 for scope, team in scopes.items()}
        advice = await recommendations(self.costs, self.settings, self.catalogue, now)
        out.recommendations = [r.to_record() for r in advice.items]
        stored = await self.costs.forecasts(since)
        intervals = intervals_by_scope(f for found in stored.values() for f in found)
        complete = {s: _dense([(d, c) for d, c in days if d < today], today)
                    for s, days in spend.items()}
        month_end: dict[str, float] = {}
        for scope, days in complete.items():
            if len(days) < MIN_POINTS:
                continue  # too little history for any forecast
            savings = sum(r.monthly_savings for r in advice.items
                          if scope == TOTAL or r.team == scope)
            record = await asyncio.to_thread(  # fitting is CPU: the worker's loop goes on
                self._forecast, scope, days, today, intervals.get(scope, {}), savings)
            out.forecasts.append(record)
            month_end[scope] = record["month_end_total"]
        state = alert_state(await self.budgets.alerts())
        budgets = [Budget(b.team, float(b.monthly), b.currency)
                   for b in await self.budgets.budgets()]
        out.alerts += evaluate_budgets(budgets, as_of_ms=now, spend_by_day=spend,
                                       month_end=month_end,
                                       thresholds=self.settings.budget_thresholds, state=state)
        out.alerts += cost_anomalies(complete, intervals, state, as_of_ms=now,
                                     currency=self.settings.currency)
        for record in out.recommendations:
            self.predict(RECOMMENDATION_BRANCH, record)
        for record in out.forecasts:
            self.predict(FORECAST_BRANCH, record)
        for record in out.alerts:
            self.alert(record)
        return out

    def _forecast(self, scope: str, days: list[tuple[int, float]], today: int,
                  intervals: dict[int, Interval], savings: float) -> dict[str, Any]:
        """The ``CostForecast`` record of one scope from its complete days."""
        values = [c for _, c in days]
        fc = forecast([d for d, _ in days], values, self.settings.horizon_days,
                      self.settings.level)
        start = month_start(today)
        summary = summarise(fc, values, sum(c for d, c in days if d >= start))
        recent = [d for d, c in days if d >= today - ANOMALY_DAYS * DAY_MS
                  and (i := intervals.get(d)) is not None and not i.lower <= c <= i.upper]
        total = scope == TOTAL
        return to_record(
            fc, summary, prediction_id=_forecast_id(scope, today),
            scope="total" if total else "team", scope_value="all" if total else scope,
            history_days=len(days), currency=self.settings.currency,
            anomalies=[_iso_day(d) for d in recent], potential_savings=round(savings, 2))

    async def keep(self, run: Run) -> None:
        """Store what ``run`` published (after it was flushed to the broker)."""
        await self.budgets.save_alerts(run.alerts)
        await self.costs.save_forecasts(run.forecasts)


def _dense(days: list[tuple[int, float]], today: int) -> list[tuple[int, float]]:
    """Every day from the first with spend up to yesterday (a day without rows spent 0).

    >>> _dense([(0, 1.0), (2 * DAY_MS, 3.0)], 4 * DAY_MS)
    [(0, 1.0), (86400000, 0.0), (172800000, 3.0), (259200000, 0.0)]
    """
    if not days:
        return []
    known = dict(days)
    return [(d, known.get(d, 0.0)) for d in range(days[0][0], today, DAY_MS)]


def _forecast_id(scope: str, today: int) -> str:
    """Deterministic id of a scope's forecast made on ``today``."""
    return str(uuid.uuid5(_NAMESPACE, f"cost_forecast\x1f{scope}\x1f{today}"))


def _iso_day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()
