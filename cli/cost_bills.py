"""``dharma cost import`` and ``dharma cost reconcile``: providers' bills (FOCUS 1.x)
beside the estimated cost.

    dharma cost import focus-2026-11.csv
    dharma cost reconcile --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --json

An import reads the file as it sends it, checks every line
(:mod:`dharma.agents.cost.focus_csv`), sends the valid ones to ``billing.focus`` (the cost
worker stores them in ``cost_billed``) and lists the invalid ones on stderr with their
line numbers and reasons (exit code 1).  Line ids are hashes of their content, so the
fixed file can simply be imported again: the lines sent before are not stored twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from dharma.cli.cmdb import JSON_HELP, emit_json, failures, parse_at, plain, say
from dharma.cli.common import console, load_settings, produce_all, utf8_text
from dharma.streams.settings import Settings

__all__ = ["import_bills", "reconcile", "register"]


def import_bills(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="A FOCUS 1.x cost and usage export, CSV with a header."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Send a FOCUS export's lines to billing.focus, for the cost worker to store beside
    the estimated cost.  Invalid lines are listed on stderr (line number and reasons)
    and the valid ones are sent anyway; exit code 1 when any was invalid.  Importing a
    file again sends the same line ids: nothing is stored twice."""
    from dharma.agents.cost.focus_csv import FocusReader
    from dharma.streams.topics import BILLING_FOCUS

    invalid = 0

    def told(line: int, why: list[str]) -> None:
        nonlocal invalid
        invalid += 1
        say(f"line {line}: {'; '.join(why)}", err=True)

    with failures(), utf8_text(file) as stream:
        reader = FocusReader(stream, told)
        for note in reader.notes:
            say(f"note: {note}", err=True)
        sent = produce_all(load_settings(), BILLING_FOCUS.name, reader, what="line")
    if as_json:
        emit_json({"sent": sent, "invalid": invalid})
    else:
        say(f"{sent} lines sent to billing.focus, {invalid} invalid")
    if invalid:
        raise typer.Exit(1)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def _money(value: Any) -> float | None:
    return None if value is None else float(value)


async def _reconcile(settings: Settings, start: int, end: int, threshold: float) -> list[Any]:
    from dharma.sinks.bills import BillStore

    store = BillStore(settings.postgres.dsn.get_secret_value())
    try:
        await store.setup()
        return await store.reconcile(start, end, threshold, settings.cost.currency)
    finally:
        await store.close()


def reconcile(
    start: str = typer.Option(..., "--from", help="First instant (its whole UTC day is "
                              "included): ISO 8601 with a zone, or epoch ms."),
    end: str = typer.Option(..., "--to", help="End, exclusive: ISO 8601 with a zone, or "
                            "epoch ms."),
    threshold: float | None = typer.Option(None, min=0, help="Relative difference beyond "
                                           "which a resource-day is reported (default: "
                                           "DHARMA_COST_RECONCILE_THRESHOLD, 0.05)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Billed beside estimated cost per resource and UTC day: those differing by more
    than the threshold, or billed or estimated only, largest difference first."""
    start_ms, end_ms = parse_at(start), parse_at(end)
    assert start_ms is not None and end_ms is not None
    if end_ms <= start_ms:
        raise typer.BadParameter("--to must be after --from")
    settings = load_settings()
    limit = settings.cost.reconcile_threshold if threshold is None else threshold
    with failures():
        found = asyncio.run(_reconcile(settings, start_ms, end_ms, limit))
    rows = [{"resource_id": d.resource_id, "day": _day(d.day), "billed": _money(d.billed),
             "estimated": _money(d.estimated), "difference": float(d.difference),
             "relative_difference": float(d.relative_difference), "status": d.status}
            for d in found]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        say(f"billed and estimated cost agree within {limit:.1%} on every resource-day")
        return
    table = Table("resource", "day", "billed", "estimated", "difference", "relative",
                  "status", title=f"{settings.cost.currency}, threshold {limit:.1%}")
    for r in rows:
        table.add_row(*plain(r["resource_id"], r["day"], _shown(r["billed"]),
                             _shown(r["estimated"]), f"{r['difference']:.2f}",
                             f"{r['relative_difference']:.1%}", r["status"]))
    console.print(table)


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def register(cost_app: typer.Typer) -> None:
    """Add ``import`` and ``reconcile`` to ``dharma cost``."""
    cost_app.command("import")(import_bills)
    cost_app.command("reconcile")(reconcile)
