"""Budget alerts (80 %, 100 %, forecast over budget; once each per month) and cost
anomalies (a day outside the interval forecast before it), from the pure
:mod:`dharma.agents.cost.budgets`: evaluated day by day over a month as the cost
worker does on its schedule, carrying the firing state between evaluations."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.cost.budgets import (
    COMPONENT,
    DAY_MS,
    TOTAL,
    AlertState,
    Budget,
    Interval,
    alert_state,
    cost_anomalies,
    evaluate_budgets,
    intervals_before,
    intervals_by_scope,
)
from dharma.streams.alerting import fingerprint
from dharma.streams.settings import HealingSettings

ROOT = Path(__file__).resolve().parents[3]
DEC = 1_796_083_200_000  # 2026-12-01T00:00:00Z
JAN = DEC + 31 * DAY_MS  # 2027-01-01T00:00:00Z
THRESHOLDS = (0.8, 1.0)
SCHEMA = fastavro.parse_schema(json.loads(
    (ROOT / "schemas" / "alerts.notifications-value.avsc").read_text(encoding="utf-8")))


def day(n: int, start: int = DEC) -> int:
    """Start of day ``n`` (1-based) of the month starting at ``start``."""
    return start + (n - 1) * DAY_MS


def naive_month_end(days: Sequence[tuple[int, float]], month_days: int = 31) -> float:
    """Actual so far plus the mean day so far for the rest of the month (a stand-in
    for the forecast's month-end mean)."""
    spent = sum(c for _, c in days)
    return spent + spent / len(days) * (month_days - len(days)) if days else 0.0


def judge(budgets: Sequence[Budget], state: AlertState, as_of: int,
          days: Sequence[tuple[int, float]], month_end: float | None,
          thresholds: Sequence[float] = THRESHOLDS, team: str = "web") -> list[dict[str, Any]]:
    """``evaluate_budgets`` for one scope."""
    return evaluate_budgets(budgets, as_of_ms=as_of, spend_by_day={team: days},
                            month_end={} if month_end is None else {team: month_end},
                            thresholds=thresholds, state=state)


def run_month(spend: Sequence[float], budget: float, team: str = "web"
              ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Evaluate at the end of every day of December as the worker would; every record
    published, and the firing state left."""
    state: dict[str, dict[str, Any]] = {}
    published: list[dict[str, Any]] = []
    for n in range(1, len(spend) + 1):
        days = [(day(i + 1), spend[i]) for i in range(n)]
        records = judge([Budget(team, budget)], state, day(n) + DAY_MS, days,
                        naive_month_end(days), team=team)
        published += records
        state = alert_state([*state.values(), *records])
    return published, state


def fired(records: Sequence[dict[str, Any]]) -> list[tuple[str, str | None, int, str]]:
    """(kind, threshold, day of month, severity) of the firing records."""
    return [(r["kind"], r["labels"].get("threshold"), (r["ts"] - DEC) // DAY_MS + 1,
             r["severity"]) for r in records if r["status"] == "firing"]


CASES = {
    # name: (daily spend over December, budget, [(kind, threshold, day, severity)])
    "under budget": ([50.0] * 31, 3000.0, []),
    "80 % on the 30th": ([80.0] * 31, 3000.0, [("budget", "0.8", 30, "warning")]),
    "80 %, 100 % and the forecast": (
        [100.0] * 31, 3000.0,
        [("budget_forecast", None, 1, "critical"), ("budget", "0.8", 24, "warning"),
         ("budget", "1", 30, "critical")]),
    "a spike crosses all at once": (
        [50.0] * 10 + [2500.0] + [50.0] * 20, 3000.0,
        [("budget", "0.8", 11, "warning"), ("budget", "1", 11, "critical"),
         ("budget_forecast", None, 11, "critical")]),
}


@pytest.mark.parametrize("name", CASES)
def test_budget_alerts_fire_once_each_over_a_month(name: str) -> None:
    spend, budget, expected = CASES[name]
    published, state = run_month(spend, budget)
    assert fired(published) == expected
    assert [r for r in published if r["status"] == "resolved"] == []
    assert len(state) == len(expected)
    for record in published:
        assert fastavro.validate(record, SCHEMA)
        assert record["labels"]["component"] == COMPONENT
        assert record["labels"]["team"] == "web" and record["labels"]["month"] == "2026-12"
        assert record["labels"]["budget"] == f"{budget:.2f}"


def test_a_raised_budget_resolves_its_alerts_once() -> None:
    spend = [(day(i), 100.0) for i in range(1, 31)]
    _, state = run_month([100.0] * 30, 3000.0)
    records = judge([Budget("web", 5000.0)], state, day(31), spend, 3100.0)
    assert sorted(r["status"] for r in records) == ["resolved"] * 3
    assert {r["fingerprint"] for r in records} == set(state)
    for record in records:
        assert record["ts"] == day(31) and record["labels"]["spend"] == "3000.00"
        assert record["labels"]["episode_start"] == state[record["fingerprint"]]["labels"][
            "episode_start"]
        assert fastavro.validate(record, SCHEMA)
    after = alert_state([*state.values(), *records])
    assert {r["status"] for r in after.values()} == {"resolved"}
    assert judge([Budget("web", 5000.0)], after, day(31), spend, 3100.0) == []


def test_a_correction_that_lowers_spend_resolves_and_a_deleted_budget_too() -> None:
    _, state = run_month([100.0] * 30, 3000.0)
    corrected = [(day(i), 90.0) for i in range(1, 31)]  # 2700: over 80 %, under 100 %
    records = evaluate_budgets([Budget("web", 3000.0)], as_of_ms=day(31),
                               spend_by_day={"web": corrected}, month_end={"web": 2790.0},
                               thresholds=THRESHOLDS, state=state)
    assert sorted((r["kind"], r["labels"].get("threshold"), r["status"]) for r in records) == [
        ("budget", "1", "resolved"), ("budget_forecast", None, "resolved")]
    state = alert_state([*state.values(), *records])
    gone = evaluate_budgets([], as_of_ms=day(31), spend_by_day={"web": corrected},
                            month_end={}, thresholds=THRESHOLDS, state=state)
    assert [(r["kind"], r["status"]) for r in gone] == [("budget", "resolved")]


def test_firing_again_after_a_resolution_is_a_new_episode() -> None:
    days = [(day(i), 100.0) for i in range(1, 11)]  # 1000: 100 % of 1000 on day 10
    fired = judge([Budget("web", 1000.0)], {}, day(11), days, 1000.0, thresholds=(1.0,))
    state = alert_state(fired)
    resolved = judge([Budget("web", 2000.0)], state, day(12), days, 1000.0, thresholds=(1.0,))
    state = alert_state([*state.values(), *resolved])
    again = judge([Budget("web", 1000.0)], state, day(13), days, 1000.0, thresholds=(1.0,))
    assert [r["status"] for r in (*fired, *resolved, *again)] == [
        "firing", "resolved", "firing"]
    assert len({r["fingerprint"] for r in (*fired, *resolved, *again)}) == 1
    assert len({r["alert_id"] for r in (*fired, *resolved, *again)}) == 3
    assert fired[0]["ts"] == day(10) and resolved[0]["ts"] == again[0]["ts"] == day(12)
    state = alert_state([*state.values(), *again])
    assert judge([Budget("web", 1000.0)], state, day(14), days, 1000.0, thresholds=(1.0,)) == []


def test_a_missing_forecast_neither_fires_nor_resolves_the_forecast_alert() -> None:
    _, state = run_month([100.0] * 30, 3000.0)
    records = evaluate_budgets([Budget("web", 3000.0)], as_of_ms=day(31),
                               spend_by_day={"web": [(day(i), 100.0) for i in range(1, 31)]},
                               month_end={}, thresholds=THRESHOLDS, state=state)
    assert records == []


def test_a_new_month_starts_fresh() -> None:
    _, state = run_month([100.0] * 31, 3000.0)
    assert len(state) == 3
    january = {"web": [(JAN, 10.0)]}
    records = evaluate_budgets([Budget("web", 3000.0)], as_of_ms=JAN + 3_600_000,
                               spend_by_day=january, month_end={"web": 310.0},
                               thresholds=THRESHOLDS, state=state)
    assert sorted(r["status"] for r in records) == ["resolved"] * 3
    assert all(r["ts"] == JAN and r["labels"]["month"] == "2026-12" for r in records)
    assert all("2026-12 is over" in r["summary"] for r in records)
    state = alert_state([*state.values(), *records])
    big = {"web": [(JAN, 2500.0)]}
    again = evaluate_budgets([Budget("web", 3000.0)], as_of_ms=JAN + DAY_MS,
                             spend_by_day=big, month_end={"web": 5000.0},
                             thresholds=THRESHOLDS, state=state)
    assert sorted((r["kind"], r["status"], r["labels"]["month"]) for r in again) == [
        ("budget", "firing", "2027-01"), ("budget_forecast", "firing", "2027-01")]


def test_the_estate_and_teams_are_separate_scopes() -> None:
    days = [(day(1), 900.0)]
    records = evaluate_budgets(
        [Budget(TOTAL, 1000.0), Budget("total", 1000.0)], as_of_ms=day(2),
        spend_by_day={TOTAL: days, "total": days}, month_end={}, thresholds=(0.8,), state={})
    assert sorted((r["source"], r["labels"]["scope"]) for r in records) == [
        ("team:total", "team"), ("total", "total")]
    assert len({r["fingerprint"] for r in records}) == 2


def test_spend_outside_the_month_or_not_a_number_counts_for_nothing() -> None:
    days = [(day(1) - DAY_MS, 5000.0), (day(1), float("nan")), (day(2), float("inf")),
            (day(40), 5000.0)]
    assert evaluate_budgets([Budget("web", 1000.0)], as_of_ms=day(3), spend_by_day={"web": days},
                            month_end={"web": float("nan")}, thresholds=THRESHOLDS,
                            state={}) == []


def test_a_clock_gone_back_ends_no_alert_of_a_later_month() -> None:
    _, state = run_month([100.0] * 31, 3000.0)
    november = judge([Budget("web", 3000.0)], state, DEC - DAY_MS, [], 0.0)
    assert november == []


def test_thresholds_that_are_not_positive_shares_are_ignored() -> None:
    days = [(day(1), 0.0)]
    assert judge([Budget("web", 100.0)], {}, day(2), days, 0.0,
                 thresholds=(0.0, -1.0, float("nan"), float("inf"))) == []


def test_a_budget_must_be_a_positive_amount() -> None:
    for amount in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            Budget("web", amount)


daily_spend = st.lists(st.floats(0, 500, allow_nan=False), min_size=1, max_size=31)


@given(spend=daily_spend, budget=st.floats(1, 10_000), month_end=st.floats(0, 20_000),
       thresholds=st.lists(st.sampled_from([0.5, 0.8, 0.9, 1.0, 1.2]), min_size=1, max_size=3))
def test_repeated_evaluation_never_fires_twice(spend: list[float], budget: float,
                                               month_end: float,
                                               thresholds: list[float]) -> None:
    as_of, days = day(len(spend)) + DAY_MS, [(day(i + 1), c) for i, c in enumerate(spend)]
    budgets = [Budget("web", budget)]
    first = judge(budgets, {}, as_of, days, month_end, thresholds)
    assert first == judge(budgets, {}, as_of, days, month_end, thresholds)
    assert all(r["status"] == "firing" for r in first)
    assert len({r["fingerprint"] for r in first}) == len(first)
    state = alert_state(first)
    assert judge(budgets, state, as_of, days, month_end, thresholds) == []


@given(spend=daily_spend)
def test_a_month_evaluated_daily_fires_each_alert_at_most_once(spend: list[float]) -> None:
    """Actual spend only grows: each ``budget`` alert fires once and stays; a forecast
    may come down, so its alert alternates firing and resolved, never firing twice."""
    published, _ = run_month(spend, 1000.0)
    actual = [r for r in published if r["kind"] == "budget"]
    assert all(r["status"] == "firing" for r in actual)
    assert max(Counter(r["fingerprint"] for r in actual).values(), default=1) == 1
    statuses = [r["status"] for r in published if r["kind"] == "budget_forecast"]
    assert statuses == ["firing", "resolved"] * (len(statuses) // 2) + \
        ["firing"] * (len(statuses) % 2)


def test_stored_state_that_is_not_its_own_is_ignored() -> None:
    _, state = run_month([100.0] * 30, 3000.0)
    good = next(iter(state.values()))
    forged = {**good, "fingerprint": "f" * 32}
    other = {**good, "labels": {**good["labels"], "component": "trust"}}
    broken = [{**good, "labels": {**good["labels"], "episode_start": "soon"}},
              {**good, "labels": {**good["labels"], "month": "someday"}},
              {**good, "kind": "anomaly"}, {"fingerprint": good["fingerprint"]}, "text"]
    assert alert_state([forged, other, *broken]) == {}  # type: ignore[list-item]
    assert alert_state([good, forged]) == {good["fingerprint"]: good}


def test_healing_leaves_cost_alerts_alone() -> None:
    assert COMPONENT in HealingSettings().ignored_components


# -- cost anomalies ----------------------------------------------------------------------

def forecast(made: int, days: Sequence[int], mean: float = 100.0, width: float = 20.0,
             team: str = TOTAL) -> dict[str, Any]:
    scope = ("total", "all") if team == TOTAL else ("team", team)
    daily = [{"day": d, "mean": mean, "lower": mean - width, "upper": mean + width}
             for d in days]
    return {"scope": scope[0], "scope_value": scope[1], "ts": made, "daily": daily}


def test_a_day_outside_the_interval_fires_once_and_resolves_after_a_correction() -> None:
    intervals = {"web": intervals_before([forecast(day(1), [day(n) for n in range(1, 8)])])}
    actual = {"web": [(day(1), 100.0), (day(2), 150.0), (day(3), 60.0), (day(4), 119.0)]}
    records = cost_anomalies(actual, intervals, {}, as_of_ms=day(5))
    assert [(r["labels"]["day"], r["labels"]["direction"], r["status"]) for r in records] == [
        ("2026-12-02", "above", "firing"), ("2026-12-03", "below", "firing")]
    first = records[0]
    assert first["kind"] == "cost_anomaly" and first["ts"] == day(2)
    assert (first["labels"]["expected"], first["labels"]["lower"], first["labels"]["upper"]) == (
        "100.00", "80.00", "120.00")
    assert "150.00 USD on 2026-12-02, above the forecast interval [80.00, 120.00]" in \
        first["summary"]
    assert all(fastavro.validate(r, SCHEMA) for r in records)
    state = alert_state(records)
    assert cost_anomalies(actual, intervals, state, as_of_ms=day(6)) == []
    corrected = {"web": [(day(2), 110.0), (day(3), 60.0)]}
    resolved = cost_anomalies(corrected, intervals, state, as_of_ms=day(6))
    assert [(r["labels"]["day"], r["status"], r["ts"]) for r in resolved] == [
        ("2026-12-02", "resolved", day(6))]
    assert resolved[0]["fingerprint"] == first["fingerprint"]


def test_only_complete_days_with_an_interval_made_before_them_are_judged() -> None:
    late = forecast(day(3), [day(2), day(3), day(4)], mean=1000.0)  # made after day 2
    early = forecast(day(1), [day(1), day(2)])
    intervals = intervals_by_scope([late, early, forecast(day(1), [day(4)], team="all")])
    assert intervals[TOTAL][day(2)] == Interval(100.0, 80.0, 120.0)
    assert intervals["all"] == {day(4): Interval(100.0, 80.0, 120.0)}  # a team named "all"
    actual = {TOTAL: [(day(2), 100.0), (day(3), 1000.0), (day(4), 5000.0), (day(5), 0.0)]}
    assert cost_anomalies(actual, intervals, {}, as_of_ms=day(5) - 1) == [], \
        "days 2 and 3 are inside their intervals, day 4 is not over, day 5 has none"
    records = cost_anomalies(actual, intervals, {}, as_of_ms=day(6))
    assert [(r["source"], r["labels"]["team"], r["labels"]["scope"], r["labels"]["day"])
            for r in records] == [("total", TOTAL, "total", "2026-12-04")]
    assert records[0]["fingerprint"] == fingerprint("total", "2026-12-04", "cost_anomaly")


def test_budget_evaluation_leaves_anomalies_alone() -> None:
    intervals = {"web": intervals_before([forecast(day(1), [day(1)])])}
    state = alert_state(cost_anomalies({"web": [(day(1), 500.0)]}, intervals, {},
                                        as_of_ms=day(2)))
    assert evaluate_budgets([], as_of_ms=JAN + DAY_MS, spend_by_day={}, month_end={},
                            thresholds=THRESHOLDS, state=state) == []


@pytest.mark.parametrize("junk", [
    {}, {"invalid": True}, {"scope": "team", "scope_value": "web", "ts": 0, "daily": "x"},
    {"scope": "team", "scope_value": "web", "ts": 0, "daily": [{"day": 0, "mean": "5"}]},
    {"scope": "team", "scope_value": "web", "ts": 0,
     "daily": [{"day": 0, "mean": float("nan"), "lower": 0, "upper": 1}]},
    ["not", "a", "mapping"]])
def test_a_stored_record_that_is_not_a_forecast_is_passed_over(junk: Any) -> None:
    """The store is shared: one bad record must not stop every schedule run (it did)."""
    good = {"scope": "team", "scope_value": "web", "ts": 0,
            "daily": [{"day": 0, "mean": 5.0, "lower": 4.0, "upper": 6.0}]}
    assert intervals_by_scope([junk, good]) == intervals_by_scope([good])
    assert intervals_by_scope([junk, good])["web"][0] == Interval(5.0, 4.0, 6.0)
