"""``dharma cost budget``: monthly budgets per team and for the whole estate.

    dharma cost budget set --team payments --monthly 12000
    dharma cost budget set --total --monthly 50000
    dharma cost budget list --json
    dharma cost budget delete --team payments

Budgets live in PostgreSQL (:mod:`dharma.sinks.budgets`); the cost worker reads them
on its schedule (``DHARMA_COST_SCHEDULE_S``) and alerts on ``alerts.notifications``
when a month's spend crosses ``DHARMA_COST_BUDGET_THRESHOLDS`` of a budget or its
forecast exceeds it.  Amounts are in ``DHARMA_COST_CURRENCY``.  A non-positive
amount, an unknown team to delete, a database away: a message on stderr and exit 1.
"""

from __future__ import annotations

import os
from dataclasses import asdict

import typer
from rich.table import Table

from dharma.cli.cmdb import JSON_HELP, emit_json, failures, iso, plain, say
from dharma.cli.common import console, load_settings
from dharma.streams.errors import DharmaError

__all__ = ["budget_app", "register"]

budget_app = typer.Typer(help="Monthly budgets: set, list, delete.", no_args_is_help=True)

_TEAM_HELP = "The team (as in the CMDB)."
_TOTAL_HELP = "The whole estate's budget instead of a team's."
_ESTATE = "the whole estate"


def _dsn() -> str:
    return load_settings().postgres.dsn.get_secret_value()


def _scope(team: str | None, total: bool) -> str:
    """The budget's key: the team, or ``'*'`` for ``--total``; exactly one of them."""
    from dharma.sinks.budgets import TOTAL
    from dharma.streams.records import checked_name

    if total == (team is not None):
        raise DharmaError("give either --team TEAM or --total")
    if team is None:
        return TOTAL
    if team == TOTAL:
        raise DharmaError(f"{TOTAL!r} is not a team: use --total for the whole estate")
    return checked_name(team, "team")


def _named(team: str) -> str:
    return _ESTATE if team == "*" else f"team {team}"


@budget_app.command("set")
def set_(
    team: str | None = typer.Option(None, help=_TEAM_HELP),
    total: bool = typer.Option(False, "--total", help=_TOTAL_HELP),
    monthly: float = typer.Option(..., help="The monthly budget, a positive amount."),
    by: str | None = typer.Option(None, help="Who sets it (recorded); $USER by default."),
) -> None:
    """Set (or replace) a monthly budget."""
    from dharma.sinks.budgets import set_budget

    settings = load_settings()
    who = by or os.environ.get("USER") or "unknown"
    with failures():
        row = set_budget(_dsn(), _scope(team, total), monthly, settings.cost.currency, who)
    say(f"budget of {_named(row.team)}: {row.monthly:.2f} {row.currency} a month "
        f"(set by {row.set_by})")


@budget_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Every budget (the whole estate's as team ``*``)."""
    from dharma.sinks.budgets import list_budgets

    with failures():
        rows = list_budgets(_dsn())
    if as_json:
        emit_json([asdict(row) for row in rows])
        return
    if not rows:
        say("no budgets (dharma cost budget set --team TEAM --monthly AMOUNT)")
        return
    table = Table("team", "monthly", "currency", "set by", "set at", title="budgets")
    for row in rows:
        table.add_row(*plain(row.team, f"{row.monthly:.2f}", row.currency, row.set_by,
                             iso(row.set_at)))
    console.print(table)


@budget_app.command()
def delete(
    team: str | None = typer.Option(None, help=_TEAM_HELP),
    total: bool = typer.Option(False, "--total", help=_TOTAL_HELP),
) -> None:
    """Delete a budget (its firing alerts resolve on the worker's next evaluation)."""
    from dharma.sinks.budgets import delete_budget

    with failures():
        scope = _scope(team, total)
        if not delete_budget(_dsn(), scope):
            raise DharmaError(f"{_named(scope)} has no budget")
    say(f"budget of {_named(scope)} deleted")


def register(cost_app: typer.Typer) -> None:
    """Add ``dharma cost budget``."""
    cost_app.add_typer(budget_app, name="budget")
