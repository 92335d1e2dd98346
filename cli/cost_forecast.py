"""``dharma cost forecast``: the replay form of the cost forecast, over a CSV.

``--input F.csv`` holds ``timestamp,value`` rows (a header is required; times
in ISO 8601, or epoch milliseconds or seconds); ``--output O.csv`` gets
``timestamp,mean,lower,upper`` for the ``--horizon`` steps after the last row,
from exactly the forecast the cost worker publishes
(:func:`dharma.agents.cost.forecast.forecast`).  The output's times take the
input's form: epoch ms or s as given, ISO 8601 with the same separator, zone
and precision (a naive time is read and written as UTC).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import typer
from rich.markup import escape

from dharma.cli.common import err_console

__all__ = ["TimeFormat", "read_series", "register", "write_forecast"]

HEADER = ["timestamp", "value"]
#: Epoch numbers at or above this are milliseconds (1973 in ms, 5138 in s).
EPOCH_MS_FROM = 100_000_000_000


class InputError(ValueError):
    """A replay input the forecast cannot read (the message names the line)."""


@dataclass(frozen=True)
class TimeFormat:
    """How the input writes its times, so the output writes them alike.

    >>> f = TimeFormat.of("2014-02-14 14:30:00")
    >>> f.parse("2014-02-14 14:30:00"), f.render(1392388200000)
    (1392388200000, '2014-02-14 14:30:00')
    >>> TimeFormat.of("2026-01-31").render(1769904000000)
    '2026-02-01'
    >>> TimeFormat.of("1700000000").render(1700003600000)
    '1700003600'
    """

    kind: str  # "iso", "date", "ms" or "s"
    sep: str = "T"
    zone: str = ""  # "" (naive, read as UTC), "Z" or "offset" (written as +02:00)
    timespec: str = "seconds"
    offset_min: int = 0

    @classmethod
    def of(cls, text: str) -> TimeFormat:
        """The format of one time as written."""
        text = text.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return cls("ms" if abs(number) >= EPOCH_MS_FROM else "s")
        if len(text) == 10:
            return cls("date")
        moment = datetime.fromisoformat(text)
        offset = moment.utcoffset()
        zone = "Z" if text.endswith("Z") else "" if offset is None else "offset"
        timespec = ("minutes" if text[16:17] != ":" else
                    "seconds" if text[19:20] != "." else
                    "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds")
        minutes = 0 if offset is None else int(offset.total_seconds() // 60)
        return cls("iso", sep=text[10], zone=zone, timespec=timespec, offset_min=minutes)

    def parse(self, text: str) -> int:
        """Epoch ms of a time written in this file (any of the accepted forms)."""
        text = text.strip()
        if self.kind in ("ms", "s"):
            return round(float(text) * (1 if self.kind == "ms" else 1000))
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return round(moment.timestamp() * 1000)

    def render(self, ms: int) -> str:
        """Epoch ms written as the input writes times."""
        if self.kind == "ms":
            return str(ms)
        if self.kind == "s":
            return f"{ms / 1000:.0f}" if ms % 1000 == 0 else str(ms / 1000)
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        if self.kind == "date":
            return moment.date().isoformat()
        if self.zone == "offset":
            zone = timezone(timedelta(minutes=self.offset_min))
            return moment.astimezone(zone).isoformat(sep=self.sep, timespec=self.timespec)
        text = moment.replace(tzinfo=None).isoformat(sep=self.sep, timespec=self.timespec)
        return text + self.zone


def read_series(path: Path) -> tuple[list[int], list[float], TimeFormat]:
    """Times (epoch ms), values and time format of a ``timestamp,value`` CSV."""
    with path.open(newline="", encoding="utf-8-sig") as handle:  # a spreadsheet's BOM
        rows = csv.reader(handle)
        header = [cell.strip().lower() for cell in next(rows, [])]
        if header[:2] != HEADER:
            raise InputError(f"{path}: the header must be 'timestamp,value', not "
                             f"{','.join(header) or 'empty'!r}")
        times: list[int] = []
        values: list[float] = []
        fmt: TimeFormat | None = None
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            fmt = fmt or _format_of(path, line, row[0])
            times.append(_time(path, line, fmt, row[0]))
            values.append(_value(path, line, row))
    if fmt is None:
        raise InputError(f"{path}: no rows after the header")
    return times, values, fmt


def _format_of(path: Path, line: int, text: str) -> TimeFormat:
    try:
        return TimeFormat.of(text)
    except ValueError:
        raise InputError(f"{path}:{line}: {text!r} is not an ISO 8601 time or an epoch "
                         "number") from None


def _time(path: Path, line: int, fmt: TimeFormat, text: str) -> int:
    try:
        return fmt.parse(text)
    except (ValueError, OverflowError):
        raise InputError(f"{path}:{line}: {text!r} is not a time like the first row's "
                         f"({fmt.kind})") from None


def _value(path: Path, line: int, row: list[str]) -> float:
    text = row[1] if len(row) > 1 else ""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"{path}:{line}: value {text!r} is not a finite number")
    return value


def write_forecast(path: Path, fmt: TimeFormat, timestamps: list[int], mean: list[float],
                   lower: list[float], upper: list[float]) -> None:
    """``timestamp,mean,lower,upper`` rows, times written as the input wrote them."""
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "mean", "lower", "upper"])
        for row in zip(timestamps, mean, lower, upper, strict=True):
            out.writerow([fmt.render(row[0]), *row[1:]])


def forecast_command(
    input: Path = typer.Option(..., "--input", help="timestamp,value CSV (header required)."),
    output: Path = typer.Option(..., "--output", help="timestamp,mean,lower,upper CSV."),
    horizon: int = typer.Option(..., "--horizon", min=1, help="Steps forecast."),
    level: float = typer.Option(95.0, "--level", help="Interval coverage, percent."),
) -> None:
    """Forecast the HORIZON steps after the last row of a timestamp,value CSV, with a
    LEVEL % interval (seasonality from the cadence; one configuration for every series)."""
    from dharma.agents.cost.forecast import forecast

    try:
        times, values, fmt = read_series(input)
        fc = forecast(times, values, horizon=horizon, level=level)
        write_forecast(output, fmt, fc.timestamps, fc.mean, fc.lower, fc.upper)
    except (OSError, ValueError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


def register(cost_app: typer.Typer) -> None:
    """Add ``dharma cost forecast``."""
    cost_app.command("forecast")(forecast_command)

