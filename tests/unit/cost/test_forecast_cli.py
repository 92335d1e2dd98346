"""`dharma cost forecast` as a subprocess on a CSV written here, and `dharma bench
forecast`'s backtest on generated series (no stack, no NAB file needed)."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from dharma.agents.cost.forecast import forecast
from dharma.bench.cost_forecast import backtest

START = datetime(2026, 1, 1, tzinfo=UTC)


def hourly_rows(hours: int, seed: int = 2) -> list[tuple[str, float]]:
    rng = np.random.default_rng(seed)
    hour = np.arange(hours)
    load = 50 + 20 * np.sin(hour * 2 * np.pi / 24) + rng.normal(0, 2, hours)
    return [((START + timedelta(hours=int(h))).strftime("%Y-%m-%d %H:%M:%S"), float(v))
            for h, v in zip(hour, load, strict=True)]


def write(path: Path, rows: list[tuple[str, float]]) -> Path:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "value"])
        out.writerows(rows)
    return path


def dharma(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dharma.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_command_writes_the_horizon_after_the_last_row(tmp_path: Path) -> None:
    rows = hourly_rows(24 * 5)
    source, target = write(tmp_path / "in.csv", rows), tmp_path / "out.csv"
    run = dharma("cost", "forecast", "--input", str(source), "--horizon", "24", "--level", "90",
                 "--output", str(target))
    assert run.returncode == 0, run.stderr
    with target.open(newline="") as handle:
        out = list(csv.reader(handle))
    assert out[0] == ["timestamp", "mean", "lower", "upper"]
    assert [r[0] for r in out[1:]] == [
        (START + timedelta(hours=120 + h)).strftime("%Y-%m-%d %H:%M:%S") for h in range(24)]
    expected = forecast([round((START + timedelta(hours=h)).timestamp() * 1000)
                         for h in range(120)], [v for _, v in rows], horizon=24, level=90)
    assert [[float(c) for c in r[1:]] for r in out[1:]] == [
        list(b) for b in zip(expected.mean, expected.lower, expected.upper, strict=True)]


def test_an_irregular_file_fails_on_stderr_without_a_traceback(tmp_path: Path) -> None:
    rows = hourly_rows(10)
    rows[4] = ("2026-01-01 04:20:00", rows[4][1])
    source = write(tmp_path / "in.csv", rows)
    run = dharma("cost", "forecast", "--input", str(source), "--horizon", "3", "--output",
                 str(tmp_path / "out.csv"))
    assert run.returncode == 1
    assert "irregular series" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out.csv").exists()


def test_the_backtest_scores_every_long_enough_series(tmp_path: Path) -> None:
    write(tmp_path / "daily_pattern.csv", hourly_rows(24 * 9))
    write(tmp_path / "short.csv", hourly_rows(100))
    figures = backtest(tmp_path)
    assert figures["skipped_too_short"] == ["short"]
    (row,) = figures["series"]
    assert row["series"] == "daily_pattern" and row["origins"] == 1
    assert figures["mase_ratio"] == pytest.approx(row["ratio"], abs=0.005)  # rounded
    assert 0 <= figures["coverage"] <= 1
    assert figures["mase"] < figures["naive_mase"]
