"""Savings recommendations: each rule fires on its evidence, and only on it."""

from __future__ import annotations

import io
import math
from typing import Any

import fastavro
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dharma.agents.cost.catalogue import load_catalogue
from dharma.agents.cost.recommend import (
    Asset,
    Recommendation,
    Recommendations,
    off_hours_per_month,
    recommend,
)
from dharma.schemas import load_schema
from dharma.streams.settings import CostSettings

HOUR = 3_600_000
DAY = 24 * HOUR
NOW = 1_797_206_400_000  # Monday 2026-12-14 00:00 UTC: the 14 days before are two whole weeks
CATALOGUE = load_catalogue()
RULES = CostSettings()  # 14 days, 30 hours, p99.5, 1.2 headroom, idle 10 %, 8-19, cv 0.1, 28 %
CONTRACT = load_schema("ml.predictions-value")
BRANCH = "dharma.predictions.CostRecommendation"


def asset(rid: str, itype: str | None = "m5.2xlarge", env: str = "prod", team: str = "payments",
          cost: float | None = -1.0) -> Asset:
    entry = CATALOGUE.get(itype)
    price = (entry.hourly_price if entry else 0.1) if cost == -1.0 else cost
    return Asset(rid, rid, team, env, "aws", "us-east-1", "app", itype, price)


def hours(count: int, value: float, end: int = NOW) -> dict[int, float]:
    """``count`` hourly maxima of ``value`` in the hours before ``end``."""
    return {end - (i + 1) * HOUR: value for i in range(count)}


def business(hour_ms: int) -> bool:
    weekday, hour = (hour_ms // DAY + 3) % 7, hour_ms // HOUR % 24
    return weekday < 5 and 8 <= hour < 19


def run(assets: list[Asset], usage: dict[str, Any] | None = None,
        daily: dict[str, dict[int, float]] | None = None, rules: CostSettings = RULES,
        now: int = NOW) -> Recommendations:
    return recommend(assets, usage or {}, daily or {}, rules, CATALOGUE, now)


def only(result: Recommendations, kind: str) -> list[Recommendation]:
    return [r for r in result.items if r.type == kind]


def days(values: list[float], now: int = NOW) -> dict[int, float]:
    """Daily spend of the ``len(values)`` complete days before ``now``'s day, oldest first."""
    today = now // DAY * DAY
    return {today - (len(values) - i) * DAY: v for i, v in enumerate(values)}


# right_size ------------------------------------------------------------------------------

def test_right_size_picks_the_cheapest_smaller_size_that_fits() -> None:
    usage = {"app-1": {"cpu_utilization": hours(48, 10.0),
                       "memory_utilization": hours(48, 10.0)}}
    [rec] = only(run([asset("app-1", "m5.4xlarge")], usage), "right_size")
    # 16 vCPU * 10 % * 1.2 = 1.92 vCPU; 64 GiB * 10 % * 1.2 = 7.68 GiB: m5.large (2, 8)
    assert (rec.current, rec.proposed) == ("m5.4xlarge", "m5.large")
    assert rec.monthly_savings == round((0.768 - 0.096) * 730, 2) == 490.56
    assert rec.evidence["cpu_hours"] == "48" and rec.evidence["cpu_p99.5_percent"] == "10"
    assert rec.evidence["cpu_needed"] == "1.92" and rec.evidence["memory_needed"] == "7.68"
    assert rec.team == "payments" and rec.subject == "app-1"


def test_memory_in_use_keeps_a_larger_size_than_cpu_alone_would() -> None:
    usage = {"app-1": {"cpu_utilization": hours(48, 20.0),
                       "memory_utilization": hours(48, 30.0)}}
    [rec] = only(run([asset("app-1", "m5.2xlarge")], usage), "right_size")
    # CPU alone: 8 * 20 % * 1.2 = 1.92 -> m5.large; memory 32 * 30 % * 1.2 = 11.52 GiB -> xlarge
    assert rec.proposed == "m5.xlarge"
    assert rec.monthly_savings == round((0.384 - 0.192) * 730, 2) == 140.16


def test_memory_constraint_blocks_a_cpu_only_downsize() -> None:
    usage = {"db-1": {"cpu_utilization": hours(48, 5.0),
                      "memory_utilization": hours(48, 90.0)}}
    result = run([asset("db-1", "r5.2xlarge")], usage)
    assert only(result, "right_size") == []
    assert [s.reason for s in result.skipped if s.rule == "right_size"] == \
        ["no cheaper r5 size fits 0.48 vCPU and 69.12 GiB"]


def test_without_enough_memory_data_the_memory_is_kept_whole() -> None:
    usage = {"db-1": {"cpu_utilization": hours(48, 5.0),
                      "memory_utilization": hours(29, 1.0)}}
    result = run([asset("db-1", "r5.2xlarge")], usage)
    assert only(result, "right_size") == []
    assert "64 GiB" in result.skipped[0].reason


def test_right_size_needs_min_hours_of_cpu_in_the_lookback() -> None:
    old = hours(200, 1.0, end=NOW - 14 * DAY)  # before the lookback: not evidence
    usage = {"app-1": {"cpu_utilization": {**old, **hours(29, 1.0)},
                       "memory_utilization": hours(48, 1.0)}}
    result = run([asset("app-1", "m5.4xlarge")], usage)
    assert only(result, "right_size") == []
    assert result.skipped[0].reason == "29 hours of CPU data in the last 14 days (30 needed)"
    usage["app-1"]["cpu_utilization"] = hours(30, 1.0)
    assert len(only(run([asset("app-1", "m5.4xlarge")], usage), "right_size")) == 1


def test_one_saturated_hour_in_two_days_is_respected_by_the_percentile() -> None:
    cpu = hours(48, 5.0)
    cpu[NOW - 7 * HOUR] = 100.0
    usage = {"app-1": {"cpu_utilization": cpu, "memory_utilization": hours(48, 5.0)}}
    result = run([asset("app-1", "m5.2xlarge")], usage)
    # p99.5 of 47 x 5 % and 1 x 100 % is 77.7 %: 8 * 0.777 * 1.2 = 7.46 vCPU, only 8 fits
    assert only(result, "right_size") == []


def test_a_type_the_catalogue_does_not_list_is_skipped_saying_so() -> None:
    usage = {"gpu-1": {"cpu_utilization": hours(48, 1.0)}}
    result = run([asset("gpu-1", "p4d.24xlarge"), asset("x-1", None)], usage)
    assert result.items == []
    assert [s.reason for s in result.skipped] == [
        "instance type p4d.24xlarge is not in the catalogue",
        "instance type (none) is not in the catalogue"]
    assert {s.team for s in result.skipped} == {"payments"}


def test_forged_readings_never_make_an_asset_look_smaller_than_it_is() -> None:
    cpu = hours(48, 10.0)
    for i, forged in enumerate([-500.0, float("nan"), float("-inf")]):
        cpu[NOW - (60 + i) * HOUR] = forged  # not evidence
    cpu[NOW - HOUR] = 1e9  # saturated: counts as 100 %
    usage = {"app-1": {"cpu_utilization": cpu, "memory_utilization": hours(48, 10.0)}}
    result = run([asset("app-1", "m5.4xlarge")], usage)
    assert only(result, "right_size") == []
    assert result.skipped[0].reason.startswith("no cheaper m5 size fits")
    del cpu[NOW - HOUR]
    [rec] = only(run([asset("app-1", "m5.4xlarge")], usage), "right_size")
    assert rec.evidence["cpu_hours"] == "47"


# schedule_shutdown -----------------------------------------------------------------------

def office_usage(idle: float, busy: float = 60.0) -> dict[str, dict[int, float]]:
    cpu = {h: (busy if business(h) else idle) for h in hours(14 * 24, 0.0)}
    return {"cpu_utilization": cpu}


def test_an_idle_non_production_asset_is_scheduled_off_outside_business_hours() -> None:
    result = run([asset("web-dev", "t3.medium", env="dev")], {"web-dev": office_usage(3.0)})
    [rec] = result.items
    assert rec.type == "schedule_shutdown"
    assert rec.proposed == "off 19:00-08:00 UTC on weekdays and all weekend"
    assert off_hours_per_month((8, 19)) == (168 - 5 * 11) * 52 / 12
    assert rec.monthly_savings == round(0.0416 * (168 - 55) * 52 / 12, 2) == 20.37
    assert rec.evidence["off_hours_observed"] == str(14 * 24 - 2 * 55)
    assert rec.evidence["cpu_max_off_hours_percent"] == "3"


@pytest.mark.parametrize("env", ["prod", "Production"])
def test_production_is_never_scheduled(env: str) -> None:
    result = run([asset("web-1", "t3.medium", env=env)], {"web-1": office_usage(0.0)})
    assert result.items == []
    assert [s.rule for s in result.skipped] == ["right_size"]  # nothing to say: not a candidate


def test_an_asset_without_env_is_taken_as_production() -> None:
    result = run([asset("web-1", "t3.medium", env=" ")], {"web-1": office_usage(0.0)})
    assert result.items == []
    assert result.skipped[-1].reason == "no env: taken as production"


def test_one_busy_night_hour_keeps_the_asset_on() -> None:
    usage = office_usage(3.0)
    night = next(h for h in usage["cpu_utilization"] if not business(h))
    usage["cpu_utilization"][night] = 10.0  # idle means below idle_percent
    result = run([asset("web-dev", "t3.medium", env="dev")], {"web-dev": usage})
    assert result.items == []
    assert "reached 10 % outside business hours" in result.skipped[-1].reason


def test_scheduling_needs_min_hours_outside_business_hours() -> None:
    # two weeks of office hours but only 29 hours outside them: not enough nights
    cpu = {h: 2.0 for h in hours(14 * 24, 0.0) if business(h)}
    evenings = sorted(h for h in hours(14 * 24, 0.0) if not business(h))[:29]
    cpu |= {h: 2.0 for h in evenings}
    result = run([asset("web-dev", "t3.medium", env="dev")],
                 {"web-dev": {"cpu_utilization": cpu}})
    assert only(result, "schedule_shutdown") == []
    assert result.skipped[-1].reason == \
        "29 hours of CPU data outside business hours (30 needed)"


def test_an_unpriced_asset_is_not_scheduled() -> None:
    result = run([asset("web-dev", "t3.medium", env="dev", cost=None)],
                 {"web-dev": office_usage(1.0)})
    assert only(result, "schedule_shutdown") == []
    assert ("schedule_shutdown", "no known price") in \
        [(s.rule, s.reason) for s in result.skipped]


@pytest.mark.parametrize("cost", [0.0, float("nan"), float("inf")])
def test_a_price_that_is_no_price_schedules_nothing(cost: float) -> None:
    result = run([asset("web-dev", "t3.medium", env="dev", cost=cost)],
                 {"web-dev": office_usage(1.0)})
    assert result.items == []
    assert result.skipped[-1].reason == "no known price"


def test_a_right_sized_asset_is_scheduled_at_its_new_price() -> None:
    usage = office_usage(1.0, busy=10.0)
    usage["memory_utilization"] = hours(14 * 24, 10.0)
    result = run([asset("app-dev", "m5.4xlarge", env="staging")], {"app-dev": usage})
    [resize] = only(result, "right_size")
    [schedule] = only(result, "schedule_shutdown")
    assert resize.proposed == "m5.large"
    assert schedule.monthly_savings == round(0.096 * (168 - 55) * 52 / 12, 2)
    assert result.potential_savings == round(resize.monthly_savings
                                             + schedule.monthly_savings, 2)


def test_an_asset_right_sizing_already_makes_cheaper_than_its_rate_is_not_scheduled() -> None:
    usage = office_usage(1.0, busy=10.0)
    usage["memory_utilization"] = hours(14 * 24, 10.0)
    # a negotiated 0.5 USD/h, less than the 0.672 USD/h the right-size takes off the list price
    result = run([asset("app-dev", "m5.4xlarge", env="dev", cost=0.5)], {"app-dev": usage})
    assert [r.type for r in result.items] == ["right_size"]
    assert result.skipped[-1].reason == "nothing left to save after right-sizing"


def test_business_hours_that_make_no_day_are_refused() -> None:
    with pytest.raises(ValueError, match="business hours"):
        run([], rules=CostSettings(business_hours=(19, 8)))


# commitment ------------------------------------------------------------------------------

STEADY = [100.0 + (i % 5) for i in range(30)]  # 100..104: cv about 0.014


def test_stable_spend_gets_a_commitment_on_its_lowest_day() -> None:
    [rec] = run([], daily={"team:payments": days(STEADY)}).items
    assert (rec.type, rec.subject, rec.team, rec.current) == \
        ("commitment", "team:payments", "payments", "on-demand")
    hourly = math.floor(100 / 24 * 1000) / 1000  # 4.166 USD/h
    assert rec.proposed == "1-year commitment of 4.166 USD/h"
    assert rec.monthly_savings == round(hourly * 730 * 0.28, 2) == 851.53
    assert rec.evidence["days"] == "30" and rec.evidence["min_daily"] == "100"


def test_a_spiky_series_gets_no_commitment() -> None:
    spiky = [50.0 if i % 2 else 150.0 for i in range(30)]
    result = run([], daily={"team:payments": days(spiky), "all": days(spiky)})
    assert result.items == []
    assert result.skipped[0].reason.startswith("daily spend varies: coefficient of variation 0.5")
    assert [(s.subject, s.team) for s in result.skipped] == [("team:payments", "payments"),
                                                            ("all", "")]


def test_a_commitment_needs_thirty_days_of_spend() -> None:
    result = run([], daily={"all": days(STEADY[:29])})
    assert result.items == []
    assert result.skipped[0].reason == "29 of the last 30 days have spend"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_day_of_spend_that_is_no_figure_is_a_missing_day(bad: float) -> None:
    result = run([], daily={"all": days([*STEADY[:29], bad])})
    assert result.items == []
    assert result.skipped[0].reason == "29 of the last 30 days have spend"


def test_refunds_that_sink_the_lowest_day_below_zero_commit_nothing() -> None:
    result = run([], daily={"all": days([*STEADY[:29], -1.0])}, rules=CostSettings(
        commitment_cv=10))
    assert result.items == []
    assert result.skipped[0].reason == "nothing left to commit after the other savings"


def test_the_current_partial_day_is_not_part_of_the_evidence() -> None:
    spend = days(STEADY) | {NOW: 1.0}  # today so far
    [rec] = run([], daily={"all": spend}, now=NOW + 5 * HOUR).items
    assert rec.evidence["min_daily"] == "100"


def test_commitments_cover_what_right_sizing_leaves_and_never_twice() -> None:
    usage = {"app-1": {"cpu_utilization": hours(48, 10.0),
                       "memory_utilization": hours(48, 10.0)}}
    teams = {"team:payments": days(STEADY), "team:web": days([50.0] * 30)}
    total = days([a + b for a, b in zip(STEADY, [50.0] * 30, strict=True)])
    result = run([asset("app-1", "m5.4xlarge")], usage, {**teams, "all": total})
    cut = (0.768 - 0.096)  # the right-size takes this much per hour off payments
    by_scope = {r.subject: float(r.evidence["commitment_hourly"])
                for r in only(result, "commitment")}
    assert by_scope["team:payments"] == math.floor((100 / 24 - cut) * 1000) / 1000
    assert by_scope["team:web"] == math.floor(50 / 24 * 1000) / 1000
    # the estate commits only what the teams left: never more than its lowest day, less cuts
    assert by_scope.get("all", 0.0) + by_scope["team:payments"] + by_scope["team:web"] \
        <= 150 / 24 - cut + 1e-9


# the record ------------------------------------------------------------------------------

def roundtrip(parsed: Any, record: dict[str, Any]) -> Any:
    """(branch name, record) read back after writing ``record`` as the contract's branch."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, (BRANCH, record))
    buf.seek(0)
    return fastavro.schemaless_reader(buf, parsed, parsed, return_record_name=True)


def test_the_record_is_the_contracts_cost_recommendation() -> None:
    usage = {"app-1": {"cpu_utilization": hours(48, 10.0),
                       "memory_utilization": hours(48, 10.0)}}
    result = run([asset("app-1", "m5.4xlarge")], usage, {"all": days(STEADY)})
    parsed = fastavro.parse_schema(CONTRACT)
    branch = next(b for b in CONTRACT if b["name"] == "CostRecommendation")
    for rec in result.items:
        record = rec.to_record()
        assert sorted(record) == sorted(f["name"] for f in branch["fields"])
        name, back = roundtrip(parsed, record)
        assert name == BRANCH
        assert back["kind"] == "cost_recommendation" and back["currency"] == "USD"
        assert back["evidence"] == rec.evidence and back["ts"].timestamp() * 1000 == NOW


def test_a_recomputation_the_same_day_replaces_and_the_next_day_adds() -> None:
    usage = {"app-1": {"cpu_utilization": hours(48, 10.0),
                       "memory_utilization": hours(48, 10.0)}}
    first = run([asset("app-1", "m5.4xlarge")], usage)
    later = run([asset("app-1", "m5.4xlarge")], usage, now=NOW + 5 * HOUR)
    tomorrow = run([asset("app-1", "m5.4xlarge")], usage, now=NOW + DAY)
    assert first.items[0].prediction_id == later.items[0].prediction_id
    assert first.items[0].prediction_id != tomorrow.items[0].prediction_id


# properties ------------------------------------------------------------------------------

SIZES = sorted(CATALOGUE.sizes)
percent = st.floats(0, 100, allow_nan=False)


@st.composite
def estates(draw: st.DrawFn) -> tuple[list[Asset], dict[str, Any], dict[str, dict[int, float]]]:
    assets: list[Asset] = []
    usage: dict[str, dict[str, dict[int, float]]] = {}
    for i in range(draw(st.integers(0, 5))):
        rid = f"a{i}"
        team = draw(st.sampled_from(["red", "blue"]))
        env = draw(st.sampled_from(["prod", "dev"]))
        cost = draw(st.none() | st.floats(0, 5, allow_nan=False))
        assets.append(asset(rid, draw(st.sampled_from(SIZES)), env, team, cost))
        usage[rid] = {}
        for metric in ("cpu_utilization", "memory_utilization"):
            level = draw(st.sampled_from([2.0, 30.0, 100.0]) | percent)
            shares = draw(st.lists(st.floats(0, 1), max_size=80))
            usage[rid][metric] = {NOW - (h + 1) * HOUR: level * share
                                  for h, share in enumerate(shares)}
    steady, wild = st.floats(10, 12), st.floats(0, 500)
    daily = {scope: days(draw(st.lists(draw(st.sampled_from([steady, wild])), min_size=29,
                                       max_size=30)))
             for scope in ("team:red", "team:blue", "all")}
    return assets, usage, daily


@settings(max_examples=150, deadline=None)
@given(estates(), st.integers(1, 40))
def test_savings_are_positive_and_a_new_size_is_cheaper_in_the_same_family(
        estate: tuple[list[Asset], dict[str, Any], dict[str, dict[int, float]]],
        min_hours: int) -> None:
    assets, usage, daily = estate
    result = run(assets, usage, daily, CostSettings(min_hours=min_hours))
    for rec in result.items:
        assert rec.monthly_savings >= 0 and math.isfinite(rec.monthly_savings)
        if rec.type == "right_size":
            old, new = CATALOGUE.sizes[rec.current], CATALOGUE.sizes[rec.proposed]
            assert new.family == old.family and new.hourly_price < old.hourly_price
    assert result.potential_savings == round(sum(r.monthly_savings for r in result.items), 2)
    committed = sum(float(r.evidence["commitment_hourly"]) for r in only(result, "commitment"))
    if any(r.subject == "all" for r in result.items):
        assert committed <= min(daily["all"].values()) / 24 + 1e-9
    assert len({r.prediction_id for r in result.items}) == len(result.items)
    for rec in result.items:
        event(rec.type)
