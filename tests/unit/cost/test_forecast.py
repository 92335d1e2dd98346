"""The cost forecast (agents/cost/forecast.py): cadence, season, fallback, intervals,
summary and its CostForecast record; the replay CLI's time formats and errors."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import fastavro
import numpy as np
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dharma.agents.cost.forecast import (
    Forecast,
    forecast,
    regularise,
    season_for,
    summarise,
    to_record,
)
from dharma.agents.cost.logic import DAY_MS, HOUR_MS
from dharma.cli import cost_forecast
from dharma.schemas import load_schema
from dharma.streams.codec import strip_logical_types

JAN_1 = 1_767_225_600_000  # 2026-01-01T00:00Z
cadences = st.sampled_from([300_000, 900_000, HOUR_MS, 6 * HOUR_MS, DAY_MS, 7 * DAY_MS])


def weekly_spend(days: int, seed: int = 1, noise: float = 20.0) -> tuple[list[int], list[float]]:
    """Daily spend with a strong weekly pattern (weekends low), a trend and noise."""
    rng = np.random.default_rng(seed)
    day = np.arange(days)
    weekly = np.where(day % 7 >= 5, -300.0, 100.0)
    spend = 1_000 + 3 * day + weekly + rng.normal(0, noise, days)
    return (JAN_1 + day * DAY_MS).tolist(), spend.tolist()


def check_bands(fc: Forecast, last_ts: int, cadence: int, horizon: int) -> None:
    assert len(fc.timestamps) == len(fc.mean) == len(fc.lower) == len(fc.upper) == horizon
    assert fc.timestamps == [last_ts + cadence * (i + 1) for i in range(horizon)]
    assert all(lo <= m <= hi for lo, m, hi in zip(fc.lower, fc.mean, fc.upper, strict=True))


@settings(deadline=None)
@given(cadence=cadences, n=st.integers(3, 7), horizon=st.integers(1, 40),
       start=st.integers(0, 2_000_000_000_000),
       data=st.data())
def test_short_series_fall_back_with_bands_that_widen(cadence: int, n: int, horizon: int,
                                                      start: int, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.floats(0, 1e6), min_size=n, max_size=n))
    times = [start + i * cadence for i in range(n)]
    fc = forecast(times, values, horizon)
    check_bands(fc, times[-1], cadence, horizon)
    assert fc.fallback and fc.model in ("naive", "seasonal_naive")
    assert min(fc.lower) >= 0
    above = np.subtract(fc.upper, fc.mean)  # the lower side may be cut at zero
    assert (np.diff(above) >= -1e-6 * max(1.0, above.max())).all()


@settings(max_examples=6, deadline=None)
@given(cadence=st.sampled_from([HOUR_MS, DAY_MS]), horizon=st.integers(1, 60),
       seed=st.integers(0, 2**32 - 1), offset=st.floats(-50, 50))
def test_fitted_forecasts_continue_the_cadence_inside_their_bands(
        cadence: int, horizon: int, seed: int, offset: float) -> None:
    rng = np.random.default_rng(seed)
    n = 3 * season_for(cadence)
    values = (offset + 10 * np.sin(np.arange(n)) + rng.normal(0, 1, n)).tolist()
    times = [JAN_1 + i * cadence for i in range(n)]
    fc = forecast(times, values, horizon)
    check_bands(fc, times[-1], cadence, horizon)
    assert not fc.fallback and fc.model.startswith("AutoETS+OptimizedTheta/statsforecast-")
    assert fc.season == season_for(cadence)
    if min(values) >= 0:
        assert min(fc.lower) >= 0


def test_a_weekly_pattern_beats_naive_and_seasonal_naive() -> None:
    times, spend = weekly_spend(7 * 10)
    history, actual = spend[:56], np.array(spend[56:])
    fc = forecast(times[:56], history, horizon=14)
    naive = np.full(14, history[-1])
    seasonal_naive = np.resize(history[-7:], 14)
    error = np.abs(np.array(fc.mean) - actual).mean()
    assert error < 0.5 * np.abs(naive - actual).mean()
    assert error < np.abs(seasonal_naive - actual).mean()
    assert np.mean((actual >= fc.lower) & (actual <= fc.upper)) >= 0.8


def test_the_same_input_gives_the_same_forecast() -> None:
    times, spend = weekly_spend(60, seed=3)
    assert forecast(times, spend, 30) == forecast(list(reversed(times)), spend[::-1], 30)


def test_fallback_intervals_are_wider_than_the_fitted_ones() -> None:
    times, spend = weekly_spend(60, seed=4)
    fitted = forecast(times, spend, 7)
    short = forecast(times[-10:], spend[-10:], 7)
    assert short.fallback and short.model == "seasonal_naive" and short.season == 7
    assert short.mean == spend[-7:]
    assert (np.subtract(short.upper, short.lower) > np.subtract(fitted.upper, fitted.lower)).all()


def test_constant_and_zero_spend_forecast_flat() -> None:
    times = [JAN_1 + i * DAY_MS for i in range(30)]
    for level in (0.0, 42.5):
        fc = forecast(times, [level] * 30, 5)
        assert not fc.fallback
        assert fc.mean == pytest.approx([level] * 5)
        assert min(fc.lower) >= 0


@given(missing=st.sets(st.integers(1, 18), max_size=5), cadence=cadences)
def test_missing_steps_are_interpolated(missing: set[int], cadence: int) -> None:
    kept = [i for i in range(20) if i not in missing]
    series = regularise([JAN_1 + i * cadence for i in kept], [2.0 * i for i in kept])
    assert series.cadence_ms == cadence and series.start_ms == JAN_1
    assert series.values.tolist() == pytest.approx([2.0 * i for i in range(20)])


@pytest.mark.parametrize(("times", "values", "message"), [
    ([0, 1_000], [1.0, 2.0], "too short: 2 points"),
    ([0, 1_000, 2_000, 2_500, 4_000], [1.0] * 5, "irregular series: timestamp 2500"),
    ([0, 1_000, 1_000, 2_000], [1.0] * 4, "duplicate timestamp 1000"),
    ([0, 1_000, 2_000, 9_000], [1.0] * 4, "irregular series: 6 of 10 steps"),
    ([0, 1_000, 2_000], [1.0, float("nan"), 2.0], "not a finite number"),
    ([0, 1_000, 2_000], [1.0, 2.0], "same length"),
])
def test_unusable_series_are_refused(times: list[int], values: list[float],
                                     message: str) -> None:
    with pytest.raises(ValueError, match=message):
        forecast(times, values, 3)


@pytest.mark.parametrize(("horizon", "level"), [(0, 95.0), (3, 0.0), (3, 100.0)])
def test_bad_horizon_or_level_is_refused(horizon: int, level: float) -> None:
    with pytest.raises(ValueError, match=r"horizon|level"):
        forecast([0, 1, 2, 3], [1.0] * 4, horizon, level)


def test_seasons_follow_the_cadence() -> None:
    assert [season_for(c) for c in (DAY_MS, HOUR_MS, 300_000, 60_000, 7 * DAY_MS)] == \
        [7, 24, 288, 1, 1]


def day_forecast(first_day: int, means: list[float]) -> Forecast:
    days = [first_day + i * DAY_MS for i in range(len(means))]
    return Forecast(days, means, [m * 0.9 for m in means], [m * 1.1 for m in means],
                    "m", False, 7, 95.0, DAY_MS)


@pytest.mark.parametrize(("history", "means", "trend", "pct"), [
    ([100.0] * 40, [101.0, 102.0], "stable", 1.5),
    ([100.0] * 40, [97.0, 98.0], "decreasing", -2.5),
    ([1.0] * 10 + [100.0] * 30, [110.0, 110.0], "increasing", 10.0),
    ([0.0] * 30, [5.0, 5.0], "increasing", 100.0),
    ([0.0] * 30, [0.0, 0.0], "stable", 0.0),
])
def test_trend_compares_the_forecast_day_with_the_last_30_actual_days(
        history: list[float], means: list[float], trend: str, pct: float) -> None:
    summary = summarise(day_forecast(JAN_1, means), history)
    assert (summary.trend, summary.trend_pct) == (trend, pytest.approx(pct))


def test_peaks_month_end_and_totals() -> None:
    jan_28 = JAN_1 + 27 * DAY_MS
    means = [10.0, 30.0, 10.0, 20.0, 25.0, 10.0, 40.0]  # Jan 28 .. Feb 3
    summary = summarise(day_forecast(jan_28, means), [10.0] * 30, month_to_date=270.0)
    assert summary.monthly_total == pytest.approx(145.0)
    assert summary.month_end_total == pytest.approx(270.0 + 10 + 30 + 10 + 20)
    assert summary.peak_days == [29, 1, 3]  # the three highest, in date order
    assert summary.confidence == 0.95
    assert summarise(day_forecast(JAN_1, [5.0] * 7), [5.0]).peak_days == []


def test_hourly_forecasts_summarise_per_day() -> None:
    hours = [JAN_1 + i * HOUR_MS for i in range(48)]
    fc = Forecast(hours, [1.0] * 24 + [2.0] * 24, [0.0] * 48, [3.0] * 48, "m", False, 24,
                  95.0, HOUR_MS)
    summary = summarise(fc, [24.0] * 30)
    assert summary.monthly_total == 72.0 and summary.peak_days == [2]
    assert summary.trend_pct == pytest.approx(50.0)


def cost_forecast_branch() -> dict[str, object]:
    union = strip_logical_types(load_schema("ml.predictions-value"))
    return next(b for b in union if isinstance(b, dict) and b.get("name") == "CostForecast")


def test_records_match_the_cost_forecast_contract() -> None:
    times, spend = weekly_spend(20)
    fc = forecast(times, spend, 30)
    record = to_record(fc, summarise(fc, spend, 400.0), prediction_id="p-1", scope="team",
                       scope_value="payments", history_days=20, anomalies=["2026-01-05"],
                       potential_savings=12.5)
    schema = fastavro.parse_schema(cost_forecast_branch())
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, schema)
    assert decoded == record
    assert {f["name"] for f in cost_forecast_branch()["fields"]} == set(record)  # type: ignore[attr-defined]
    assert record["ts"] == times[-1] + DAY_MS and len(record["daily"]) == 30


def test_only_whole_day_forecasts_become_records() -> None:
    fc = forecast([JAN_1 + i * HOUR_MS for i in range(10)], [1.0] * 10, 3)
    with pytest.raises(ValueError, match="whole UTC days"):
        to_record(fc, summarise(fc, [1.0]), prediction_id="p", scope="total",
                  scope_value="all", history_days=1)


@pytest.mark.parametrize(("first", "later", "ms"), [
    ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", JAN_1 + HOUR_MS),
    ("2026-01-01 02:00:00+02:00", "2026-01-01 03:00:00+02:00", JAN_1 + HOUR_MS),
    ("2026-01-01T00:00", "2026-01-01T01:00", JAN_1 + HOUR_MS),
    ("2026-01-01T00:00:00.250", "2026-01-01T01:00:00.250", JAN_1 + HOUR_MS + 250),
    ("2026-01-01", "2026-01-02", JAN_1 + DAY_MS),
    (str(JAN_1), str(JAN_1 + HOUR_MS), JAN_1 + HOUR_MS),
    (str(JAN_1 // 1000), str((JAN_1 + HOUR_MS) // 1000), JAN_1 + HOUR_MS),
])
def test_output_times_are_written_as_the_input_writes_them(first: str, later: str,
                                                          ms: int) -> None:
    fmt = cost_forecast.TimeFormat.of(first)
    assert fmt.parse(later) == ms
    assert fmt.render(ms) == later


def cli_app() -> typer.Typer:
    app = typer.Typer()
    cost_forecast.register(app)

    @app.callback()
    def root() -> None:
        """Test root, so `forecast` is a sub-command as under `dharma cost`."""

    return app


def write_csv(path: Path, header: list[str], rows: list[tuple[object, ...]]) -> Path:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(header)
        out.writerows(rows)
    return path


@pytest.mark.parametrize(("header", "rows", "message"), [
    (["time", "value"], [("2026-01-01", 1.0)] * 3, "header must be 'timestamp,value'"),
    (["timestamp", "value"], [("2026-01-01", 1.0), ("2026-01-02", "lots")],
     ":3: value 'lots' is not a finite number"),
    (["timestamp", "value"], [("yesterday", 1.0)], ":2: 'yesterday' is not an ISO 8601"),
    (["timestamp", "value"], [("2026-01-01", 1.0), ("2026-01-02T00:00:00", 1.0),
                              ("2026-01-02T13:00:00", 1.0), ("2026-01-04T00:00:00", 1.0)],
     "irregular series"),
    (["timestamp", "value"], [], "no rows after the header"),
])
def test_cli_errors_name_the_problem(tmp_path: Path, header: list[str],
                                     rows: list[tuple[object, ...]], message: str) -> None:
    source = write_csv(tmp_path / "in.csv", header, rows)
    result = CliRunner().invoke(cli_app(), ["forecast", "--input", str(source), "--horizon",
                                            "3", "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 1
    assert "".join(message.split()) in "".join(result.output.split())  # rich wraps lines
    assert not (tmp_path / "out.csv").exists()


def test_cli_error_for_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app(), ["forecast", "--input", str(tmp_path / "no.csv"),
                                            "--horizon", "3", "--output", "o.csv"])
    assert result.exit_code == 1 and "No such file" in result.output


def test_a_series_the_models_cannot_fit_falls_back_to_seasonal_naive() -> None:
    hours = [JAN_1 + i * HOUR_MS for i in range(100)]
    fc = forecast(hours, [1e300 * (1 + i % 3) for i in range(100)], 3)
    assert fc.fallback and fc.model == "seasonal_naive"
    assert fc.mean == [1e300 * (1 + (100 + i) % 3) for i in range(3)]


def test_values_whose_interval_overflows_are_refused() -> None:
    with pytest.raises(ValueError, match="too large to forecast"):
        forecast([0, 1, 2, 3], [1e308, -1e308, 1e308, -1e308], 2)


def test_a_spreadsheet_export_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("timestamp,value\n2026-01-01,1\n2026-01-02,2\n2026-01-03,3\n",
                      encoding="utf-8-sig")
    result = CliRunner().invoke(cli_app(), ["forecast", "--input", str(source), "--horizon",
                                            "2", "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.csv").read_text().splitlines()[1].startswith("2026-01-04,3.0,")
