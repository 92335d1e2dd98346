"""Budget and cost-anomaly alerts (pure: no faust, no I/O).

The cost worker calls these on its schedule with what it read from PostgreSQL
(budgets, daily cost rows, the state of its alerts) and its latest forecasts,
publishes the records they return on ``alerts.notifications`` (the shared shape of
:func:`dharma.streams.alerting.alert_record`, ``component`` ``cost``) and stores
them (:class:`dharma.sinks.budgets.BudgetStore`), so a restart fires nothing twice.
The state (:func:`alert_state`) is the last record of each alert, firing or resolved.

* :func:`evaluate_budgets`: kind ``budget`` when the month's actual spend of a scope
  (a team, or :data:`TOTAL` for the estate) reaches a threshold times its monthly budget
  (``warning`` below 1.0, ``critical`` from 1.0), kind ``budget_forecast`` when the
  forecast's month-end mean exceeds the budget.  Each fires once per (scope,
  threshold, month): the month and threshold are in its fingerprint.  It resolves
  when no longer true (the budget was raised or deleted, a correction lowered the
  spend, the forecast came down) and when its month is over.
* :func:`cost_anomalies`: kind ``cost_anomaly`` when a complete day's spend falls
  outside the interval the forecast made before that day (:func:`intervals_before`)
  gave it; once per (scope, day); resolved when a correction puts the day back inside.

Times are event time (epoch ms, UTC days).  A firing ``budget`` alert is dated at the
start of the day its cumulative spend reached the threshold, a ``budget_forecast`` at
the start of the last day it was judged on, a ``cost_anomaly`` at its day: evaluating the same
inputs again gives the same records, with the same ids.  An alert that fires again
after it resolved is a new episode, dated no earlier than that resolution, whose id
names it.

>>> day = 86_400_000
>>> t0 = 1_796_083_200_000  # 2026-12-01T00:00:00Z
>>> spend = {"web": [(t0 + i * day, 100.0) for i in range(9)]}
>>> alerts = evaluate_budgets([Budget("web", 1000.0)], as_of_ms=t0 + 9 * day,
...                           spend_by_day=spend, month_end={"web": 3100.0},
...                           thresholds=(0.8, 1.0), state={})
>>> [(a["kind"], a["severity"], a["labels"].get("threshold")) for a in alerts]
[('budget', 'warning', '0.8'), ('budget_forecast', 'critical', None)]
>>> state = alert_state(alerts)
>>> evaluate_budgets([Budget("web", 1000.0)], as_of_ms=t0 + 9 * day, spend_by_day=spend,
...                  month_end={"web": 3100.0}, thresholds=(0.8, 1.0), state=state)
[]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from dharma.agents.cost.logic import DAY_MS
from dharma.streams.alerting import Severity, Status, alert_record, fingerprint
from dharma.streams.records import month_start, next_month

__all__ = ["COMPONENT", "DAY_MS", "KINDS", "TOTAL", "AlertState", "Budget", "DailySpend",
           "Interval", "alert_state", "cost_anomalies", "evaluate_budgets", "intervals_before",
           "intervals_by_scope", "is_forecast", "month_of"]

logger = logging.getLogger(__name__)

COMPONENT = "cost"
#: The scope of the whole estate (a budget's ``team``).
TOTAL = "*"
AlertKind = Literal["budget", "budget_forecast", "cost_anomaly"]
KINDS: tuple[AlertKind, ...] = ("budget", "budget_forecast", "cost_anomaly")
_BUDGET_KINDS = ("budget", "budget_forecast")

#: The last record (firing or resolved) of each cost alert, by fingerprint.
AlertState = Mapping[str, Mapping[str, Any]]
DailySpend = Sequence[tuple[int, float]]


@dataclass(frozen=True)
class Budget:
    """A monthly budget of a team (``TOTAL``: the whole estate), in ``currency``."""

    team: str
    monthly: float
    currency: str = "USD"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.monthly) and self.monthly > 0):
            raise ValueError(f"budget of {self.team!r}: {self.monthly} is not a positive amount")


@dataclass(frozen=True)
class Interval:
    """A forecast day: its mean and prediction interval."""

    mean: float
    lower: float
    upper: float


def month_of(ms: int) -> str:
    """The UTC month of a time, ``YYYY-MM``.

    >>> month_of(1_796_083_200_000), month_of(1_796_083_199_999)
    ('2026-12', '2026-11')
    """
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


def _parse_month(month: str) -> int:
    """Start (epoch ms) of a ``YYYY-MM`` month; ValueError for anything else."""
    return int(datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC).timestamp() * 1000)


def _iso_day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _day_start(ms: int) -> int:
    return ms - ms % DAY_MS


def _source(team: str) -> str:
    """Who a cost alert is about: ``team:T``, or ``total`` for the estate (no team
    name can pass for the estate)."""
    return "total" if team == TOTAL else f"team:{team}"


def _scope_labels(team: str, currency: str) -> dict[str, str]:
    return {"team": team, "scope": "total" if team == TOTAL else "team", "currency": currency}


def _who(team: str) -> str:
    return "the estate" if team == TOTAL else f"team {team}"


def _money(value: float) -> str:
    return f"{value:.2f}"


# -- budgets ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Condition:
    """An alert whose condition holds now, ready to fire if it is not firing already."""

    kind: AlertKind
    team: str
    subject: str
    severity: Severity
    ts: int
    summary: str
    labels: dict[str, str]
    cause: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(_source(self.team), self.subject, self.kind)

    def record(self, previous: Mapping[str, Any] | None) -> dict[str, Any]:
        """Its ``firing`` record; after a ``previous`` (resolved) one, a new episode's."""
        after = "" if previous is None else f"after:{previous['ts']}"
        # never dated before the resolution it follows: one alert's times only grow
        ts = self.ts if previous is None else max(self.ts, int(previous["ts"]))
        return alert_record(kind=self.kind, component=COMPONENT, source=_source(self.team),
                            subject=self.subject, status="firing", severity=self.severity,
                            summary=self.summary, ts=ts, episode_start=ts, labels=self.labels,
                            cause=":".join(filter(None, (self.cause, after))))


def _firing(state: AlertState, fp: str) -> Mapping[str, Any] | None:
    """The firing record of ``fp``; None when it is not firing."""
    record = state.get(fp)
    return record if record is not None and record["status"] == "firing" else None


def _this_month(days: DailySpend, start: int, end: int) -> list[tuple[int, float]]:
    """The days of ``[start, end)`` with a finite spend, in order."""
    return sorted((d, c) for d, c in days if start <= d < end and math.isfinite(c))


def _crossing_day(days: Sequence[tuple[int, float]], limit: float) -> int | None:
    """The first day whose cumulative spend reaches ``limit``."""
    total = 0.0
    for day, cost in days:
        total += cost
        if total >= limit:
            return day
    return None


def _actual_conditions(budget: Budget, month: str, days: Sequence[tuple[int, float]],
                       thresholds: Iterable[float]) -> list[_Condition]:
    spent = sum(c for _, c in days)
    found = []
    for threshold in sorted({t for t in thresholds if math.isfinite(t) and t > 0}):
        crossed = _crossing_day(days, threshold * budget.monthly)
        if crossed is None:
            continue
        share = f"{threshold:g}"
        found.append(_Condition(
            "budget", budget.team, f"{month}/{share}",
            "critical" if threshold >= 1.0 else "warning", crossed,
            f"{_who(budget.team)} spent {_money(spent)} {budget.currency} in {month}: "
            f"{threshold:.0%} of its {_money(budget.monthly)} budget reached on "
            f"{_iso_day(crossed)}",
            {**_scope_labels(budget.team, budget.currency), "month": month,
             "threshold": share, "budget": _money(budget.monthly), "spend": _money(spent)},
            cause=_money(budget.monthly)))
    return found


def _forecast_condition(budget: Budget, month: str, spent: float, month_end: float,
                        as_of_ms: int) -> _Condition | None:
    if not month_end > budget.monthly:
        return None
    return _Condition(
        "budget_forecast", budget.team, month, "critical", _day_start(as_of_ms - 1),
        f"{_who(budget.team)} is forecast to spend {_money(month_end)} {budget.currency} in "
        f"{month}, over its {_money(budget.monthly)} budget ({_money(spent)} so far)",
        {**_scope_labels(budget.team, budget.currency), "month": month,
         "budget": _money(budget.monthly), "spend": _money(spent),
         "forecast": _money(month_end)},
        cause=_money(budget.monthly))


def evaluate_budgets(budgets: Iterable[Budget], *, as_of_ms: int,
                     spend_by_day: Mapping[str, DailySpend], month_end: Mapping[str, float],
                     thresholds: Sequence[float], state: AlertState) -> list[dict[str, Any]]:
    """The ``budget`` and ``budget_forecast`` alerts to publish at ``as_of_ms``.

    ``spend_by_day``: per scope (team, or :data:`TOTAL`), actual spend per UTC day
    (day start ms, cost) up to ``as_of_ms`` (exclusive), whose month is judged; other
    days are ignored.
    ``month_end``: per scope, actual spend so far plus the forecast means to the end
    of the month (a scope without one keeps its forecast alert as it is).
    ``state``: the cost alerts' state (:func:`alert_state`).  Returns new ``firing``
    records (conditions that hold and are not firing) and ``resolved`` ones (firing
    budget alerts whose condition no longer holds).
    """
    last = as_of_ms - 1  # spend before as_of_ms: at midnight, the month just over
    month, start, end = month_of(last), month_start(last), next_month(last)
    holding: dict[str, _Condition] = {}
    undecided: set[str] = set()
    for budget in budgets:
        days = _this_month(spend_by_day.get(budget.team, ()), start, min(end, as_of_ms))
        for condition in _actual_conditions(budget, month, days, thresholds):
            holding[condition.fingerprint] = condition
        forecast = month_end.get(budget.team)
        if forecast is None or not math.isfinite(forecast):
            undecided.add(fingerprint(_source(budget.team), month, "budget_forecast"))
            continue
        over = _forecast_condition(budget, month, sum(c for _, c in days), forecast, as_of_ms)
        if over is not None:
            holding[over.fingerprint] = over
    fired = [c.record(state.get(fp)) for fp, c in holding.items() if not _firing(state, fp)]
    ended = [_resolve(r, _why_budget_ended(r, month, spend_by_day, as_of_ms))
             for fp, r in sorted(state.items()) if r["status"] == "firing"
             and r["kind"] in _BUDGET_KINDS and fp not in holding and fp not in undecided
             and r["labels"]["month"] <= month]  # a clock gone back ends no later month
    return fired + ended


def _why_budget_ended(record: Mapping[str, Any], month: str,
                      spend_by_day: Mapping[str, DailySpend], as_of_ms: int
                      ) -> tuple[int, str, dict[str, str]]:
    """When and why a firing budget alert resolves, and its labels' new figures."""
    labels = record["labels"]
    if labels.get("month") != month:
        following = next_month(_parse_month(labels["month"]))
        return min(following, as_of_ms), f"{labels['month']} is over", {}
    start, end = _parse_month(month), next_month(_parse_month(month))
    days = _this_month(spend_by_day.get(labels["team"], ()), start, min(end, as_of_ms))
    spent = _money(sum(c for _, c in days))
    return as_of_ms, f"no longer true at {spent} {labels.get('currency', '')} spent", \
        {"spend": spent}


def _resolve(record: Mapping[str, Any], why: tuple[int, str, dict[str, str]]
             ) -> dict[str, Any]:
    """The ``resolved`` record of a firing one, at ``ts``, saying why."""
    ts, reason, figures = why
    labels = {**record["labels"], **figures}
    start = int(labels.pop("episode_start"))
    subject = labels.pop("subject")
    labels.pop("component")
    return alert_record(kind=record["kind"], component=COMPONENT, source=record["source"],
                        subject=subject, status="resolved", severity=record["severity"],
                        summary=f"resolved ({reason}): {record['summary']}", ts=max(ts, start),
                        episode_start=start, labels=labels)


# -- cost anomalies ----------------------------------------------------------------------

def intervals_before(forecasts: Iterable[Mapping[str, Any]]) -> dict[int, Interval]:
    """Per day, the interval of the latest forecast made before it (one scope's
    ``CostForecast`` records: ``ts`` the first day forecast, ``daily`` its days).

    >>> old = {"ts": 0, "daily": [{"day": 0, "mean": 5, "lower": 4, "upper": 6},
    ...                           {"day": DAY_MS, "mean": 5, "lower": 4, "upper": 6}]}
    >>> new = {"ts": DAY_MS, "daily": [{"day": DAY_MS, "mean": 7, "lower": 6, "upper": 8}]}
    >>> intervals_before([new, old])[DAY_MS], intervals_before([new, old])[0].mean
    (Interval(mean=7, lower=6, upper=8), 5)
    """
    issued: dict[int, tuple[int, Interval]] = {}
    for forecast in forecasts:
        made = int(forecast["ts"])
        for entry in forecast["daily"]:
            day = int(entry["day"])
            if day >= made and (day not in issued or issued[day][0] < made):
                issued[day] = made, Interval(entry["mean"], entry["lower"], entry["upper"])
    return {day: interval for day, (_, interval) in issued.items()}


def is_forecast(record: Any) -> bool:
    """Whether a stored record has what :func:`intervals_by_scope` reads of a
    ``CostForecast`` (a store written by something else may hold anything).

    >>> is_forecast({"scope": "team", "scope_value": "web", "ts": 0, "daily": []})
    True
    >>> is_forecast({"daily": "junk"})
    False
    """
    try:
        days = record["daily"]
        return (isinstance(record["scope"], str) and isinstance(record["scope_value"], str)
                and _number(record["ts"]) and isinstance(days, list)
                and all(_number(d[k]) for d in days for k in ("day", "mean", "lower", "upper")))
    except (KeyError, TypeError):
        return False


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def intervals_by_scope(forecasts: Iterable[Mapping[str, Any]]) -> dict[str, dict[int, Interval]]:
    """:func:`intervals_before` per scope (a team, or :data:`TOTAL` for a forecast whose
    ``scope`` is ``total``) of any ``CostForecast`` records; a record that is not one is
    passed over (logged), never allowed to stop the schedule.

    >>> f = {"scope": "total", "scope_value": "all", "ts": 0,
    ...      "daily": [{"day": 0, "mean": 5, "lower": 4, "upper": 6}]}
    >>> intervals_by_scope([f, {**f, "scope": "team", "scope_value": "all"}, {}]).keys()
    dict_keys(['*', 'all'])
    """
    by_scope: dict[str, list[Mapping[str, Any]]] = {}
    for forecast in forecasts:
        if not is_forecast(forecast):
            logger.warning("stored cost forecast is not a CostForecast: passed over")
            continue
        scope = TOTAL if forecast["scope"] == "total" else str(forecast["scope_value"])
        by_scope.setdefault(scope, []).append(forecast)
    return {scope: intervals_before(found) for scope, found in by_scope.items()}


def cost_anomalies(actual_by_day: Mapping[str, DailySpend],
                   forecast_by_day: Mapping[str, Mapping[int, Interval]], state: AlertState, *,
                   as_of_ms: int, currency: str = "USD") -> list[dict[str, Any]]:
    """The ``cost_anomaly`` alerts to publish at ``as_of_ms``.

    Per scope (team or :data:`TOTAL`), every complete day (ended by ``as_of_ms``) with
    both an actual spend and an interval (:func:`intervals_before`) is judged: outside
    it and not firing → ``firing``; inside it and firing → ``resolved`` (a correction).
    Days not judged keep their alerts as they are.
    """
    out: list[dict[str, Any]] = []
    for team, days in sorted(actual_by_day.items()):
        intervals = forecast_by_day.get(team, {})
        for day, cost in sorted(dict(days).items()):
            interval = intervals.get(day)
            if interval is None or day + DAY_MS > as_of_ms or not math.isfinite(cost):
                continue
            condition = _anomaly(team, day, cost, interval, currency)
            fp = fingerprint(_source(team), _iso_day(day), "cost_anomaly")
            was = _firing(state, fp)
            if condition is not None and was is None:
                out.append(condition.record(state.get(fp)))
            elif condition is None and was is not None:
                why = f"{_money(cost)} {currency} is inside [{_money(interval.lower)}, " \
                      f"{_money(interval.upper)}] after a correction"
                out.append(_resolve(was, (as_of_ms, why, {"spend": _money(cost)})))
    return out


def _anomaly(team: str, day: int, cost: float, interval: Interval,
             currency: str) -> _Condition | None:
    if interval.lower <= cost <= interval.upper:
        return None
    direction = "above" if cost > interval.upper else "below"
    iso = _iso_day(day)
    return _Condition(
        "cost_anomaly", team, iso, "warning", day,
        f"{_who(team)} spent {_money(cost)} {currency} on {iso}, {direction} the forecast "
        f"interval [{_money(interval.lower)}, {_money(interval.upper)}] "
        f"(expected {_money(interval.mean)})",
        {**_scope_labels(team, currency), "day": iso, "spend": _money(cost),
         "expected": _money(interval.mean), "lower": _money(interval.lower),
         "upper": _money(interval.upper), "direction": direction, "month": iso[:7]})


# -- state ---------------------------------------------------------------------------------

class _StoredAlert(BaseModel):
    """What a stored cost alert must hold to be trusted (data only, validated)."""

    model_config = ConfigDict(extra="ignore")

    fingerprint: str
    status: Status
    severity: Severity
    kind: AlertKind
    source: str
    summary: str
    ts: int
    labels: dict[str, str]


def alert_state(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of each cost alert among stored or just-published ones, by
    fingerprint (a later record of a fingerprint replaces an earlier one).  A record
    that is not a well-formed cost alert, or whose fingerprint is not its own, is left
    out (logged): stored state never forges an alert."""
    state: dict[str, dict[str, Any]] = {}
    for raw in records:
        try:
            alert = _StoredAlert.model_validate(raw)
            labels = alert.labels
            int(labels["episode_start"])
            _parse_month(labels["month"])
            str(labels["team"])  # every cost alert names its scope
            own = fingerprint(alert.source, labels["subject"], alert.kind)
        except (ValidationError, KeyError, ValueError, TypeError) as exc:
            logger.warning("cost alert state ignored: reason=%r", str(exc)[:200])
            continue
        if own != alert.fingerprint or labels.get("component") != COMPONENT:
            logger.warning("cost alert state ignored: fingerprint=%s reason=not its own",
                           alert.fingerprint)
            continue
        state[own] = alert.model_dump()
    return state
