"""``dharma detect``: replay the streaming anomaly detector over a CSV, offline.

The anomaly agent's batch step (:class:`~dharma.agents.anomaly.logic.BatchStep`)
over an in-memory state, fed one row at a time (score, then learn), so a
backtest here matches what the stream would have produced.

* ``dharma detect --input FILE.csv --output OUT.csv``: ``timestamp,value`` in,
  ``timestamp,value,anomaly_score`` out, one row per input row.
* ``dharma detect --lockstep``: ``timestamp,value`` CSV on stdin, read line by
  line; each row's score is printed and flushed before the next row is read.

Until the lead wires it into the ``dharma`` script, run it as
``python -m dharma.cli.detect ...``.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from dharma.agents.anomaly.logic import (
    ANOMALY_THRESHOLD,
    BatchStep,
    MemoryStates,
    Observation,
    SeriesDetector,
    SeriesState,
    make_detector,
)

__all__ = ["detect", "main", "parse_row", "register", "run_lockstep", "score_rows"]

#: Files with more rows than this get a progress bar on stderr.
PROGRESS_MIN_ROWS = 20_000
#: The replayed file's one series.
SERIES = "file|value"


def parse_row(row: list[str], ts_col: int, value_col: int) -> dict[str, Any]:
    """Detector input from one CSV row: bad values read as NaN, bad times as ``None``.

    Examples
    --------
    >>> parse_row(["2014-01-16 00:05:00", "33.4"], 0, 1)
    {'value': 33.4, 'timestamp': datetime.datetime(2014, 1, 16, 0, 5)}
    >>> parse_row(["1700000000000", "oops"], 0, 1)["timestamp"], parse_row(["x", "1"], 0, 1)
    (1700000000000.0, {'value': 1.0, 'timestamp': None})
    """
    try:
        value = float(row[value_col])
    except (IndexError, ValueError):
        value = math.nan
    raw = row[ts_col].strip() if ts_col < len(row) else ""
    stamp: datetime | float | None
    try:
        stamp = float(raw)  # epoch milliseconds
    except ValueError:
        try:
            stamp = datetime.fromisoformat(raw)
        except ValueError:
            stamp = None
    return {"value": value, "timestamp": stamp}


def observation(x: dict[str, Any]) -> Observation:
    """The batch step's view of a parsed row (its time in epoch ms, 0 when unreadable).

    >>> observation(parse_row(["1970-01-01 00:00:01", "2"], 0, 1))[3:5]
    (1000, 2.0)
    """
    stamp = x["timestamp"]
    if isinstance(stamp, datetime):
        ts = round(stamp.replace(tzinfo=UTC).timestamp() * 1000)
    else:
        ts = int(stamp) if stamp is not None and math.isfinite(stamp) else 0
    return Observation(SERIES, "file", "value", ts, x["value"], x)


def replay_step(det: SeriesDetector | None = None) -> BatchStep[None]:
    """The batch step over one series' in-memory state (``det``: its detector)."""
    states = MemoryStates(make_detector, {SERIES: SeriesState(det or make_detector())})
    return BatchStep(states, make_detector)


def _columns(header: list[str]) -> tuple[int, int]:
    """Positions of ``timestamp`` and ``value`` (default: first and second)."""
    names = [h.strip().lower() for h in header]
    ts = names.index("timestamp") if "timestamp" in names else 0
    val = names.index("value") if "value" in names else 1
    return ts, val


def score_rows(
    rows: Iterable[list[str]], ts_col: int, value_col: int, det: SeriesDetector | None = None
) -> Iterator[tuple[list[str], float]]:
    """Score then learn each row in order; yields ``(row, score)``.

    >>> rows = [["2014-01-01 00:00:00", "1"], ["2014-01-01 00:05:00", "2"]]
    >>> [round(s, 2) for _, s in score_rows(rows, 0, 1)]  # warming up: low, never an alert
    [0.0, 0.03]
    """
    step = replay_step(det)
    for row in rows:
        yield row, step([(None, observation(parse_row(row, ts_col, value_col)))]).scores[0]


def _fmt(score: float) -> str:
    return format(score, ".10g")


def run_file(src: Path, dst: Path, quiet: bool = False) -> tuple[int, int]:
    """Score ``src`` into ``dst``; returns ``(rows, rows at or above the threshold)``."""
    with src.open(newline="") as fh:
        total = sum(1 for _ in fh) - 1
    n = alerts = 0
    with src.open(newline="") as fin, dst.open("w", newline="") as fout:
        reader, writer = csv.reader(fin), csv.writer(fout)
        ts_col, value_col = _columns(next(reader, ["timestamp", "value"]))
        writer.writerow(["timestamp", "value", "anomaly_score"])
        show = not quiet and total >= PROGRESS_MIN_ROWS
        with Progress(*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=Console(stderr=True),
                      disable=not show) as bar:
            task = bar.add_task(f"detect {src.name}", total=total)
            for row, score in score_rows(reader, ts_col, value_col):
                ts = row[ts_col] if ts_col < len(row) else ""
                val = row[value_col] if value_col < len(row) else ""
                writer.writerow([ts, val, _fmt(score)])
                n += 1
                alerts += score >= ANOMALY_THRESHOLD
                if n % 1000 == 0:
                    bar.update(task, completed=n)
    return n, alerts


def run_lockstep(stdin: IO[str], stdout: IO[str]) -> int:
    """Answer each stdin row with its score, flushed, before reading the next.

    ``readline`` (not iteration) so that no row is read ahead of its answer.
    """
    header = stdin.readline()
    ts_col, value_col = _columns(next(csv.reader([header]), []))
    step, n = replay_step(), 0
    while True:
        line = stdin.readline()
        if not line:
            return n
        if not line.strip():
            continue
        row = next(csv.reader([line]))
        score = step([(None, observation(parse_row(row, ts_col, value_col)))]).scores[0]
        stdout.write(_fmt(score) + "\n")
        stdout.flush()
        n += 1


def detect(
    input: Path | None = typer.Option(
        None, "--input", "-i", exists=True, dir_okay=False, help="timestamp,value CSV"),
    output: Path | None = typer.Option(
        None, "--output", "-o", dir_okay=False, help="timestamp,value,anomaly_score CSV"),
    lockstep: bool = typer.Option(
        False, "--lockstep", help="stdin to stdout, one row at a time (streaming check)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar or summary"),
) -> None:
    """Score a metric series with the streaming anomaly detector (score, then learn)."""
    if lockstep:
        run_lockstep(sys.stdin, sys.stdout)
        return
    if input is None or output is None:
        raise typer.BadParameter("give --input and --output, or --lockstep")
    n, alerts = run_file(input, output, quiet)
    if not quiet:
        Console(stderr=True).print(
            f"{n} rows scored, {alerts} at or above {ANOMALY_THRESHOLD} -> {output}")


def register(app: typer.Typer) -> None:
    """Add the ``detect`` command to ``app``."""
    app.command("detect")(detect)


def main() -> None:
    """Stand-alone entry point: ``python -m dharma.cli.detect``."""
    app = typer.Typer(add_completion=False)
    register(app)  # a single command: `python -m ... --lockstep` runs `detect` directly
    app(prog_name="dharma detect")


if __name__ == "__main__":
    main()
