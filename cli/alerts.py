"""``dharma alerts``: silence anomaly notifications, list active silences.

A silence mutes matching notifications (Alertmanager semantics: globs on source,
metric and kind, until it expires); the anomaly agent re-reads them every few
seconds from PostgreSQL (``alert_silences``).

    dharma alerts silence --source 'web-*' --metric cpu_utilization --for 2h --comment "deploy"
    dharma alerts silences
"""

from __future__ import annotations

import getpass
import re

import typer
from rich.table import Table

from dharma.cli.common import console, load_settings

__all__ = ["parse_duration", "register"]

alerts_app = typer.Typer(help="Silence alerts and list silences.", no_args_is_help=True)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``15m``, ``2h`` or ``1h30m``.

    >>> parse_duration("2h"), parse_duration("1h30m"), parse_duration("45s")
    (7200.0, 5400.0, 45.0)
    """
    compact = text.replace(" ", "").lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise typer.BadParameter(f"{text!r}: expected e.g. 90s, 15m, 2h or 1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise typer.BadParameter("the duration must be positive")
    return seconds


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (e.g. a container's numeric uid)
        return "unknown"


@alerts_app.command()
def silence(
    source: str = typer.Option(..., help="Glob on the alert's source, e.g. 'web-*'."),
    metric: str = typer.Option(..., help="Glob on the metric, e.g. 'cpu_*' or '*'."),
    kind: str = typer.Option("anomaly", help="Glob on the alert kind."),
    duration: str = typer.Option(..., "--for", help="How long: 90s, 15m, 2h, 1h30m, 1d."),
    comment: str = typer.Option("", help="Why (shown in the list)."),
) -> None:
    """Mute matching notifications for a while (the episode is still tracked)."""
    from dharma.sinks.silences import create_silence

    seconds = parse_duration(duration)
    dsn = load_settings().postgres.dsn.get_secret_value()
    silence_id = create_silence(dsn, source=source, metric=metric, kind=kind,
                                duration_s=seconds, created_by=_user(),
                                comment=comment)
    console.print(f"silence [bold]{silence_id}[/] for {duration}: "
                  f"source={source} metric={metric} kind={kind}")


@alerts_app.command()
def silences() -> None:
    """List the active silences."""
    from dharma.sinks.silences import list_silences

    rows = list_silences(load_settings().postgres.dsn.get_secret_value())
    table = Table("id", "source", "metric", "kind", "ends at", "comment")
    for row in rows:
        table.add_row(*row)
    console.print(table if rows else "no active silences")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
