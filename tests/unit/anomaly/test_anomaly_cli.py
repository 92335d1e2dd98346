"""`dharma detect` (file and lock-step modes) and the cost bench."""

from __future__ import annotations

import csv
import doctest
import importlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dharma.agents.anomaly import make_detector
from dharma.bench.anomaly_cost import measure_cost
from dharma.cli import detect as detect_cli

ROWS = [(f"2014-01-01 {h:02d}:{m:02d}:00", 10.0 + (m % 3))
        for h in range(6) for m in range(0, 60, 5)]


def _app() -> typer.Typer:
    app = typer.Typer()
    detect_cli.register(app)

    @app.callback()
    def root() -> None:
        """Test root, so `detect` is a sub-command as in the `dharma` script."""

    return app


def _write(path: Path, rows: list[tuple[str, float]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        w.writerows(rows)


def test_file_mode_matches_the_streaming_detector(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, [*ROWS, ("2014-01-01 06:00:00", float("nan"))])
    result = CliRunner().invoke(_app(), ["detect", "--input", str(src), "--output", str(dst)])
    assert result.exit_code == 0, result.output
    with dst.open() as fh:
        out = list(csv.DictReader(fh))
    assert [r["timestamp"] for r in out] == [r[0] for r in ROWS] + ["2014-01-01 06:00:00"]
    det, expected = make_detector(), []
    for ts, v in ROWS:
        x = detect_cli.parse_row([ts, str(v)], 0, 1)
        expected.append(det.score_one(x))
        det.learn_one(x)
    got = [float(r["anomaly_score"]) for r in out[:-1]]
    assert got == pytest.approx(expected, abs=1e-9)  # 10 significant digits
    assert float(out[-1]["anomaly_score"]) == 0.0  # NaN input: flagged, not learned


def test_detect_needs_files_or_lockstep() -> None:
    result = CliRunner().invoke(_app(), ["detect"])
    assert result.exit_code != 0


def test_run_lockstep_answers_each_row() -> None:
    text = "timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in ROWS)
    out = io.StringIO()
    assert detect_cli.run_lockstep(io.StringIO(text), out) == len(ROWS)
    assert len(out.getvalue().split()) == len(ROWS)


def test_lockstep_process_answers_before_the_next_row() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "dharma.cli.detect", "--lockstep"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("timestamp,value\n")
    for ts, v in ROWS[:20]:
        proc.stdin.write(f"{ts},{v}\n")
        proc.stdin.flush()
        score = float(proc.stdout.readline())  # would hang if the CLI read ahead
        assert 0.0 <= score <= 1.0
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize("module", ["dharma.cli.detect", "dharma.bench.anomaly_cost"])
def test_doctests(module: str) -> None:
    assert doctest.testmod(importlib.import_module(module)).failed == 0


def test_measure_cost_small() -> None:
    r = measure_cost(n_points=300, n_series=20)
    assert r["us_per_point"] > 0
    assert 0 < r["checkpoint_bytes_per_series"] <= 20_000
    assert 0 < r["tracemalloc_bytes_per_series"] <= 20_000
