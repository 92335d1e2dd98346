"""``dharma cost report``: what was spent, grouped by asset, team, env, provider, region
or service, over a span of event time.

    dharma cost report --by team --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --json

The sums are over the hour rows of ``cost_rows`` whose hour starts in ``[from, to)``:
an hour is counted once it has closed.  Groups with time that had no known price
carry ``unpriced_hours``; a group with no priced time at all has ``"cost": null``
(unpriced is never reported as $0).
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Any

import typer
from rich.table import Table

from dharma.cli.cmdb import JSON_HELP, emit_json, failures, parse_at, plain
from dharma.cli.common import console, load_settings

__all__ = ["register", "report_rows"]


class Grouping(StrEnum):
    asset = "asset"
    team = "team"
    env = "env"
    provider = "provider"
    region = "region"
    service = "service"


def report_rows(spend: list[tuple[str, float | None, float]], by: str) -> list[dict[str, Any]]:
    """The report's objects: the grouping field and ``cost`` in USD (to the cent),
    costliest first, unpriced hours when there were any.

    >>> report_rows([("web", 1.004, 0.0), ("db", None, 2.0), ("app", 12.5, 1.0)], "team")
    [{'team': 'app', 'cost': 12.5, 'unpriced_hours': 1.0}, {'team': 'web', 'cost': 1.0}, \
{'team': 'db', 'cost': None, 'unpriced_hours': 2.0}]
    """
    rows = []
    for key, cost, unpriced in sorted(spend, key=lambda r: (r[1] is None, -(r[1] or 0), r[0])):
        row: dict[str, Any] = {by: key, "cost": None if cost is None else round(cost, 2)}
        if unpriced:
            row["unpriced_hours"] = round(unpriced, 3)
        rows.append(row)
    return rows


def report(
    by: Grouping = typer.Option(..., "--by", help="Group by this field."),
    start: str = typer.Option(..., "--from", help="Start (inclusive): ISO 8601 with a zone "
                              "or epoch milliseconds."),
    end: str = typer.Option(..., "--to", help="End (exclusive), as --from."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Cost in USD per group over [FROM, TO), costliest first."""
    from dharma.sinks.costs import connect_store

    lo, hi = parse_at(start), parse_at(end)
    assert lo is not None and hi is not None
    if hi <= lo:
        raise typer.BadParameter("--to must be after --from")

    async def ask() -> list[tuple[str, float | None, float]]:
        store = await connect_store(load_settings().postgres.dsn.get_secret_value())
        try:
            return await store.spend(by.value, lo, hi)
        finally:
            await store.close()

    with failures():
        rows = report_rows(asyncio.run(ask()), by.value)
    if as_json:
        emit_json(rows)
        return
    table = Table(by.value, "cost (USD)", "unpriced hours", title="cost")
    for row in rows:
        cost = "unpriced" if row["cost"] is None else f"{row['cost']:,.2f}"
        table.add_row(*plain(row[by.value], cost, row.get("unpriced_hours", "")))
    console.print(table)


def register(cost_app: typer.Typer) -> None:
    """Add ``dharma cost report``."""
    cost_app.command("report")(report)
