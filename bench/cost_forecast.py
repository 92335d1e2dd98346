"""Cost forecast quality and time: rolling-origin backtests and per-series latency.

**Quality** (:func:`backtest`): every ``*.csv`` (``timestamp,value``) under a
folder, aggregated to hourly means (an hour with no sample is left out, as a
gap the forecast fills), is forecast by exactly the function ``dharma cost
forecast`` runs, 48 hours ahead, from origins every 48 hours once 7 days of
history exist.  Each origin's error is its MASE: mean absolute error over the
mean absolute error of the seasonal-naive (24 h) forecast within the history;
seasonal naive itself is scored beside it in the same run.  Per series: the
mean MASE of both and their ratio; overall: the ratio of the series' mean MASEs
(the issue's target: at most 0.9), their geometric mean ratio, and the share of
actuals inside the interval (target 90-98 % at 95 %).

**Time** (:func:`measure_forecast_time`): a 30-day daily forecast on 90 days of
history (target at most 200 ms per series after warm-up), p50 and p95.

>>> figures = measure_forecast_time(n=2)
>>> sorted(figures), figures["history_days"], figures["horizon_days"]
(['history_days', 'horizon_days', 'model', 'p50_ms', 'p95_ms', 'series', 'warm_s'], 90, 30)
"""

from __future__ import annotations

from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import pandas as pd

from dharma.agents.cost.forecast import forecast, regularise, warm
from dharma.agents.cost.logic import DAY_MS, HOUR_MS

__all__ = ["backtest", "hourly_series", "measure_forecast_time", "run"]

SEASON = 24
HORIZON = 48
MIN_HISTORY = 7 * 24
ORIGIN_STEP = 48
LEVEL = 95.0


def hourly_series(path: Path) -> tuple[list[int], list[float]]:
    """Hourly means of a ``timestamp,value`` CSV (hours without a sample left out)."""
    frame = pd.read_csv(path, parse_dates=["timestamp"])
    hourly = frame.set_index("timestamp")["value"].resample("1h").mean().dropna()
    stamps = hourly.index.as_unit("ms").asi8.tolist()
    return stamps, hourly.astype(float).tolist()


def _score_origin(times: list[int], values: np.ndarray, actual: np.ndarray,
                  origin: int) -> tuple[float, float, int] | None:
    """MASE of the forecast and of seasonal naive at one origin; actuals inside (None for
    a history without seasonal change: its MASE is undefined)."""
    history = regularise(times[:origin], values[:origin].tolist()).values
    scale = float(np.mean(np.abs(history[SEASON:] - history[:-SEASON])))
    if scale == 0:
        return None
    fc = forecast(times[:origin], values[:origin].tolist(), horizon=HORIZON, level=LEVEL)
    naive = np.resize(history[-SEASON:], HORIZON)
    inside = int(np.sum((actual >= fc.lower) & (actual <= fc.upper)))
    return (float(np.mean(np.abs(np.asarray(fc.mean) - actual))) / scale,
            float(np.mean(np.abs(naive - actual))) / scale, inside)


def backtest_series(path: Path) -> dict[str, Any] | None:
    """Figures of one series; ``None`` when it is too short (or too flat) for one origin."""
    times, raw = hourly_series(path)
    grid = regularise(times, raw)
    values = grid.values
    stamps = [grid.start_ms + i * HOUR_MS for i in range(len(values))]
    origins = range(MIN_HISTORY, len(values) - HORIZON + 1, ORIGIN_STEP)
    scored = (_score_origin(stamps, values, values[o:o + HORIZON], o) for o in origins)
    scores = [s for s in scored if s is not None]
    if not scores:
        return None
    mase, naive, inside = (np.array(column) for column in zip(*scores, strict=True))
    return {"series": path.stem, "origins": len(scores), "mase": round(float(mase.mean()), 3),
            "naive_mase": round(float(naive.mean()), 3),
            "ratio": round(float(mase.mean() / naive.mean()), 3),
            "coverage": round(float(inside.sum()) / (len(scores) * HORIZON), 3)}


def backtest(folder: Path) -> dict[str, Any]:
    """Rolling-origin figures of every CSV under ``folder``, per series and overall."""
    files = sorted(folder.rglob("*.csv"))
    if not files:
        raise ValueError(f"no *.csv under {folder}")
    rows, skipped = [], []
    for path in files:
        row = backtest_series(path)
        (rows.append(row) if row else skipped.append(path.stem))
    if not rows:
        raise ValueError(f"no series under {folder} holds {MIN_HISTORY + HORIZON} hours")
    mase = np.array([r["mase"] for r in rows])
    naive = np.array([r["naive_mase"] for r in rows])
    points = np.array([r["origins"] * HORIZON for r in rows])
    coverage = np.array([r["coverage"] for r in rows])
    return {"series": rows, "skipped_too_short": skipped,
            "mase_ratio": round(float(mase.mean() / naive.mean()), 3),
            "mase_ratio_geometric": round(float(np.exp(np.mean(np.log(mase / naive)))), 3),
            "mase": round(float(mase.mean()), 3), "naive_mase": round(float(naive.mean()), 3),
            "coverage": round(float((coverage * points).sum() / points.sum()), 3)}


def _daily_history(seed: int, days: int = 90) -> tuple[list[int], list[float]]:
    """Daily spend with a weekly pattern, a slow trend and noise."""
    rng = np.random.default_rng(seed)
    day = np.arange(days)
    spend = 1_000 + 2 * day + 120 * np.sin(day * 2 * np.pi / 7) + rng.normal(0, 30, days)
    return (day * DAY_MS + 1_767_225_600_000).tolist(), spend.tolist()


def measure_forecast_time(n: int = 50) -> dict[str, Any]:
    """Seconds to warm up, then ms per 30-day daily forecast on 90 days (p50, p95)."""
    warm_s = warm()
    times, model = [], ""
    for seed in range(n):
        stamps, spend = _daily_history(seed)
        started = perf_counter()
        model = forecast(stamps, spend, horizon=30).model
        times.append((perf_counter() - started) * 1000)
    return {"series": n, "history_days": 90, "horizon_days": 30, "model": model,
            "warm_s": round(warm_s, 2), "p50_ms": round(float(np.percentile(times, 50)), 1),
            "p95_ms": round(float(np.percentile(times, 95)), 1)}


def run(nab: Path, n: int = 50) -> dict[str, Any]:
    """Backtest figures of the series under ``nab`` and the forecast time."""
    return {"time": measure_forecast_time(n), **backtest(nab)}
