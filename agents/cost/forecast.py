"""Spend forecasts: the next steps of a regular series with a prediction interval.

Pure (no I/O). One configuration serves every series:

* the **cadence** is the (lower) median step of the timestamps; every timestamp must sit
  on that grid (an irregular series is refused), and a missing step is filled by
  linear interpolation between its neighbours (at most half the grid may be
  missing);
* the **season** follows from the cadence: a week of days (7) for daily data, a
  day's steps for finer cadences (24 hourly, 288 at five minutes), none for
  cadences finer than five minutes or coarser than a day;
* the **model** is the mean of statsforecast's AutoETS and OptimizedTheta, with
  the envelope of their intervals (the lower of the two lower bounds, the higher
  of the upper ones).  ``dharma bench forecast`` measured this pair against
  each model alone and with AutoARIMA on rolling-origin backtests (docs/cost.md);
  AutoETS models no season longer than 24 steps, so beyond that it runs
  non-seasonal beside the seasonal Theta;
* with **little history** (fewer than two seasons, or than eight points), or
  when a model cannot fit the series, it is
  seasonal naive (naive below one season plus one point) whose interval comes
  from the seasonal differences seen so far, with Student's t quantile for their
  few degrees of freedom, growing with the square root of the seasons ahead:
  wide, as an estimate from a handful of differences must be;
* a series that never goes below zero (spend) gets no bound below zero.

:func:`summarise` turns a daily forecast into the seed's insights (month total,
trend, peak days, confidence) and :func:`to_record` into a ``CostForecast`` record
of ``ml.predictions`` (schemas/ml.predictions-value.avsc).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from time import perf_counter
from typing import Any

import numpy as np

from dharma.agents.cost.logic import DAY_MS

__all__ = [
    "Forecast", "RegularSeries", "Summary", "forecast", "regularise",
    "season_for", "summarise", "to_record", "warm",
]

#: Fewer points than this cannot show a cadence and one difference.
MIN_POINTS = 3
#: Below this many points (or two seasons) the models are not fitted.
MIN_FIT_POINTS = 8
#: Longest season modelled: a day of five-minute steps.
MAX_SEASON = 288
#: AutoETS's longest seasonal period.
ETS_MAX_SEASON = 24
#: Only the latest points are fitted, which bounds the time of very long inputs.
MAX_FIT_POINTS = 5_000
#: Share of the grid that may be missing before a series counts as irregular.
MAX_MISSING_SHARE = 0.5
#: The fallback's spread never goes below this share of the last season's level.
FALLBACK_MIN_SPREAD = 0.05
MODELS = "AutoETS+OptimizedTheta"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegularSeries:
    """A series on a regular grid: ``values[i]`` is at ``start_ms + i * cadence_ms``."""

    start_ms: int
    cadence_ms: int
    values: np.ndarray

    @property
    def end_ms(self) -> int:
        """Timestamp of the last value."""
        return self.start_ms + (len(self.values) - 1) * self.cadence_ms


@dataclass(frozen=True)
class Forecast:
    """``mean``, ``lower`` and ``upper`` of the steps at ``timestamps`` (epoch ms)."""

    timestamps: list[int]
    mean: list[float]
    lower: list[float]
    upper: list[float]
    model: str
    fallback: bool
    season: int
    level: float
    cadence_ms: int


def regularise(timestamps_ms: Sequence[int], values: Sequence[float]) -> RegularSeries:
    """The series on its cadence's grid, missing steps interpolated.

    >>> s = regularise([0, 3_600_000, 7_200_000, 14_400_000], [1.0, 2.0, 3.0, 5.0])
    >>> s.cadence_ms, s.values.tolist()
    (3600000, [1.0, 2.0, 3.0, 4.0, 5.0])
    >>> regularise([0, 1_000, 2_500], [1.0, 1.0, 1.0])
    Traceback (most recent call last):
    ...
    ValueError: irregular series: timestamp 2500 is not on the 1000 ms grid starting at 0
    """
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    ys = np.asarray(values, dtype=float)
    if ts.shape != ys.shape or ts.ndim != 1:
        raise ValueError("timestamps and values must be two lists of the same length")
    if len(ts) < MIN_POINTS:
        raise ValueError(f"series too short: {len(ts)} points, at least {MIN_POINTS} needed")
    if not np.isfinite(ys).all():
        raise ValueError("series has a value that is not a finite number")
    order = np.argsort(ts, kind="stable")
    ts, ys = ts[order], ys[order]
    steps = np.diff(ts)
    if (steps == 0).any():
        raise ValueError(f"duplicate timestamp {int(ts[1:][steps == 0][0])}")
    cadence = int(np.sort(steps)[(len(steps) - 1) // 2])  # the lower median: a real step
    off_grid = (ts - ts[0]) % cadence != 0
    if off_grid.any():
        raise ValueError(f"irregular series: timestamp {int(ts[off_grid][0])} is not on the "
                         f"{cadence} ms grid starting at {int(ts[0])}")
    slots = (ts - ts[0]) // cadence
    size = int(slots[-1]) + 1
    if len(ts) < size * (1 - MAX_MISSING_SHARE):
        raise ValueError(f"irregular series: {size - len(ts)} of {size} steps of "
                         f"{cadence} ms are missing")
    filled = np.interp(np.arange(size), slots, ys)
    return RegularSeries(int(ts[0]), cadence, filled)


def season_for(cadence_ms: int) -> int:
    """Seasonal period, in steps, of a cadence.

    >>> season_for(DAY_MS), season_for(3_600_000), season_for(300_000), season_for(60_000)
    (7, 24, 288, 1)
    """
    if cadence_ms == DAY_MS:
        return 7
    if cadence_ms < DAY_MS:
        steps = round(DAY_MS / cadence_ms)
        return steps if steps <= MAX_SEASON else 1
    return 1


def forecast(timestamps_ms: Sequence[int], values: Sequence[float], horizon: int,
             level: float = 95.0) -> Forecast:
    """The ``horizon`` steps after the last timestamp, with a ``level`` % interval.

    Raises ``ValueError`` for an irregular or too short series, a horizon below
    one or a level outside (0, 100).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, not {horizon}")
    if not 0 < level < 100:
        raise ValueError(f"level must be a percentage in (0, 100), not {level}")
    series = regularise(timestamps_ms, values)
    season = season_for(series.cadence_ms)
    y = series.values[-MAX_FIT_POINTS:]
    short = len(y) < max(2 * season, MIN_FIT_POINTS)
    fitted = None if short else _ensemble(y, season, horizon, level)
    with np.errstate(over="ignore"):
        mean, lower, upper, model = fitted or _seasonal_naive(y, season, horizon, level)
    if not np.isfinite([mean, lower, upper]).all():
        raise ValueError("values too large to forecast: the interval overflows")
    lower, upper = np.minimum(lower, mean), np.maximum(upper, mean)
    if series.values.min() >= 0:
        mean, lower, upper = (np.maximum(b, 0.0) for b in (mean, lower, upper))
    steps = np.arange(1, horizon + 1, dtype=np.int64) * series.cadence_ms
    return Forecast(timestamps=(series.end_ms + steps).tolist(), mean=mean.tolist(),
                    lower=lower.tolist(), upper=upper.tolist(), model=model,
                    fallback=fitted is None, season=season, level=level,
                    cadence_ms=series.cadence_ms)


Bands = tuple[np.ndarray, np.ndarray, np.ndarray, str]


def _ensemble(y: np.ndarray, season: int, horizon: int, level: float) -> Bands | None:
    """Mean of AutoETS and OptimizedTheta, envelope of their intervals; ``None`` when
    either cannot fit (statsforecast raises a bare ``Exception`` then)."""
    from statsforecast.models import AutoETS, OptimizedTheta

    models = (AutoETS(season_length=season if season <= ETS_MAX_SEASON else 1),
              OptimizedTheta(season_length=season))
    with warnings.catch_warnings():
        # constant stretches make the seasonality test divide by zero; it then
        # finds no season, which is the right answer
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            fits = [m.forecast(y=y, h=horizon, level=[level]) for m in models]
        except Exception as exc:  # statsforecast's "no model able to be fitted"
            log.warning("forecast_model_failed points=%d season=%d reason=%r",
                        len(y), season, str(exc))
            return None
    mean = np.mean([f["mean"] for f in fits], axis=0)
    lower = np.min([f[f"lo-{level}"] for f in fits], axis=0)
    upper = np.max([f[f"hi-{level}"] for f in fits], axis=0)
    if not np.isfinite([mean, lower, upper]).all():
        return None
    return mean, lower, upper, f"{MODELS}/statsforecast-{version('statsforecast')}"


def _seasonal_naive(y: np.ndarray, season: int, horizon: int, level: float) -> Bands:
    """Last season repeated; interval from the seasonal differences (t quantile).

    >>> m, lo, hi, name = _seasonal_naive(np.array([1.0, 2.0, 3.0, 4.0]), 7, 3, 95.0)
    >>> name, m.tolist(), bool((hi - m > 0).all()), bool(hi[2] - m[2] > hi[0] - m[0])
    ('naive', [4.0, 4.0, 4.0], True, True)
    """
    from scipy.special import stdtrit  # Student's t quantile, without scipy.stats' import

    period = season if len(y) > season else 1
    mean = np.resize(y[-period:], horizon)
    diffs = y[period:] - y[:-period]
    spread = max(float(np.sqrt(np.mean(diffs**2))),
                 FALLBACK_MIN_SPREAD * float(np.mean(np.abs(y[-period:]))))
    quantile = float(stdtrit(len(diffs), 0.5 + level / 200))
    seasons_ahead = np.arange(horizon) // period + 1
    half = quantile * spread * np.sqrt(seasons_ahead)
    return mean, mean - half, mean + half, "seasonal_naive" if period > 1 else "naive"


def warm() -> float:
    """Compile the models' JIT code once (the worker calls it at start); seconds taken."""
    started = perf_counter()
    days = np.arange(3 * 7 + 1)
    spend = 100 + 10 * np.sin(days * 2 * np.pi / 7) + days
    forecast((days * DAY_MS).tolist(), spend.tolist(), horizon=7)
    return perf_counter() - started



#: A change of the mean daily spend within this many percent is ``stable``.
STABLE_BAND_PCT = 2.0
#: Days of actuals the trend compares the forecast with.
TREND_DAYS = 30
MAX_PEAK_DAYS = 3


@dataclass(frozen=True)
class Summary:
    """The seed's ``predictions`` and ``insights`` of one forecast."""

    monthly_total: float
    month_end_total: float
    trend: str
    trend_pct: float
    peak_days: list[int]
    confidence: float


def summarise(fc: Forecast, history_values: Sequence[float],
              month_to_date: float = 0.0) -> Summary:
    """Month total, trend against the last 30 daily actuals, peak days, confidence.

    ``history_values`` are daily actuals, oldest first; ``month_to_date`` is the
    actual spend of the first forecast day's month before that day.  The forecast's
    steps are added up per UTC day, so an hourly forecast summarises too.

    * ``trend_pct``: mean forecast day against the mean of the last 30 actual
      days, percent; ``stable`` within ±2 %, else ``increasing`` or ``decreasing``
      (from no spend at all to some counts as +100 %);
    * ``peak_days``: days of the month of the (at most 3) highest forecast days
      among those more than 2 % above the mean forecast day, in date order (a
      flat forecast has none);
    * ``month_end_total``: ``month_to_date`` plus the forecast to the month's end.

    >>> jan_30 = 20_483 * DAY_MS  # 2026-01-30
    >>> fc = Forecast([jan_30, jan_30 + DAY_MS, jan_30 + 2 * DAY_MS], [10.0, 14.0, 12.0],
    ...               [8.0, 11.0, 9.0], [12.0, 17.0, 15.0], "m", False, 7, 95.0, DAY_MS)
    >>> s = summarise(fc, [10.0] * 30, month_to_date=300.0)
    >>> s.monthly_total, s.month_end_total, s.trend, s.trend_pct, s.peak_days, s.confidence
    (36.0, 324.0, 'increasing', 20.0, [31], 0.95)
    """
    days = _day_totals(fc)
    totals = np.array(list(days.values()))
    monthly_total = float(totals.sum())
    actual = np.asarray(history_values, dtype=float)[-TREND_DAYS:]
    trend_pct = _change_pct(float(totals.mean()), float(actual.mean()) if len(actual) else 0.0)
    first_month = _month_of(fc.timestamps[0])
    rest_of_month = sum(v for d, v in days.items() if _month_of(d) == first_month)
    return Summary(monthly_total=monthly_total, month_end_total=month_to_date + rest_of_month,
                   trend=_trend(trend_pct), trend_pct=trend_pct,
                   peak_days=_peak_days(days), confidence=fc.level / 100)


def _day_totals(fc: Forecast) -> dict[int, float]:
    """Forecast means added up per UTC day (day start ms), in date order."""
    days: dict[int, float] = {}
    for ts, mean in zip(fc.timestamps, fc.mean, strict=True):
        day = ts - ts % DAY_MS
        days[day] = days.get(day, 0.0) + mean
    return days


def _change_pct(new: float, old: float) -> float:
    if old == 0:
        return 0.0 if new == 0 else math.copysign(100.0, new)
    return 100 * (new - old) / abs(old)


def _trend(change_pct: float) -> str:
    if abs(change_pct) <= STABLE_BAND_PCT:
        return "stable"
    return "increasing" if change_pct > 0 else "decreasing"


def _peak_days(days: dict[int, float]) -> list[int]:
    average = sum(days.values()) / len(days)
    above = [(v, d) for d, v in days.items() if v > average * (1 + STABLE_BAND_PCT / 100)]
    highest = sorted(above, key=lambda vd: (-vd[0], vd[1]))[:MAX_PEAK_DAYS]
    return [_day_of_month(d) for _, d in sorted(highest, key=lambda vd: vd[1])]


def _month_of(ts_ms: int) -> tuple[int, int]:
    moment = np.datetime64(ts_ms, "ms").astype(object)
    return moment.year, moment.month


def _day_of_month(ts_ms: int) -> int:
    return int(np.datetime64(ts_ms, "ms").astype(object).day)


def to_record(fc: Forecast, summary: Summary, *, prediction_id: str, scope: str,
              scope_value: str, history_days: int, currency: str = "USD",
              anomalies: Sequence[str] = (), potential_savings: float = 0.0) -> dict[str, Any]:
    """A ``CostForecast`` record (``ml.predictions``) of a daily forecast."""
    if fc.cadence_ms != DAY_MS or fc.timestamps[0] % DAY_MS:
        raise ValueError("a CostForecast holds a forecast of whole UTC days")
    daily = [{"day": d, "mean": m, "lower": lo, "upper": hi}
             for d, m, lo, hi in zip(fc.timestamps, fc.mean, fc.lower, fc.upper, strict=True)]
    return {
        "kind": "cost_forecast", "prediction_id": prediction_id, "ts": fc.timestamps[0],
        "scope": scope, "scope_value": scope_value, "currency": currency, "model": fc.model,
        "level": fc.level, "history_days": history_days, "daily": daily,
        "monthly_total": summary.monthly_total, "month_end_total": summary.month_end_total,
        "confidence": summary.confidence, "trend": summary.trend,
        "trend_pct": summary.trend_pct, "peak_days": summary.peak_days,
        "anomalies": list(anomalies), "potential_savings": potential_savings,
    }
