"""``dharma cost recommend``: savings recommendations with their evidence.

    dharma cost recommend
    dharma cost recommend --json --team payments
    dharma cost recommend --at 2026-12-14T00:00:00Z

Reads the live assets, their hourly utilisation and the daily spend from the cost
store in PostgreSQL, runs the rules of :mod:`dharma.agents.cost.recommend` and
prints the recommendations, largest savings first, with the potential savings
(their sum).  ``--json`` prints ``{"recommendations": [CostRecommendation records],
"potential_savings": X, "skipped": [{"rule", "subject", "team", "reason"}]}``.  A bad
catalogue or a database away: a message on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from dharma.agents.cost.advisor import recommendations
from dharma.agents.cost.catalogue import load_catalogue
from dharma.agents.cost.recommend import Recommendations
from dharma.cli.cmdb import AT_HELP, JSON_HELP, emit_json, failures, parse_at, plain, say
from dharma.cli.common import console, load_settings
from dharma.streams.records import now_ms

if TYPE_CHECKING:
    from dharma.streams.settings import CostSettings

__all__ = ["recommend_command", "register"]


async def _recommend(dsn: str, settings: CostSettings, now: int) -> Recommendations:
    from dharma.sinks.costs import connect_store

    catalogue = load_catalogue(settings.catalogue)
    store = await connect_store(dsn)
    try:
        return await recommendations(store, settings, catalogue, now)
    finally:
        await store.close()


def _of_team(result: Recommendations, team: str | None) -> Recommendations:
    if team is None:
        return result
    return replace(result, items=[r for r in result.items if r.team == team],
                   skipped=[s for s in result.skipped if s.team == team])


def _show(result: Recommendations, currency: str) -> None:
    if not result.items:
        say("no recommendations")
    else:
        table = Table("type", "subject", "team", "current", "proposed",
                      f"{currency}/month", "why")
        for r in result.items:
            table.add_row(*plain(r.type, r.subject, r.team, r.current, r.proposed,
                                 f"{r.monthly_savings:,.2f}", r.summary))
        console.print(table)
    say(f"potential savings: {result.potential_savings:,.2f} {currency}/month")
    if result.skipped:
        say(f"{len(result.skipped)} checks made no recommendation (--json says why)")


def recommend_command(
    team: str | None = typer.Option(None, help="Only this team's recommendations."),
    at: str | None = typer.Option(None, help=AT_HELP + " Now by default."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Savings recommendations (right-size, non-production shutdown, commitments), each
    with its evidence and monthly savings, and the potential savings: their sum."""
    settings = load_settings()
    at_ms = parse_at(at)
    now = now_ms() if at_ms is None else at_ms
    with failures():
        result = _of_team(asyncio.run(_recommend(
            settings.postgres.dsn.get_secret_value(), settings.cost, now)), team)
    if as_json:
        emit_json({"recommendations": [r.to_record() for r in result.items],
                   "potential_savings": result.potential_savings,
                   "skipped": [asdict(s) for s in result.skipped]})
        return
    _show(result, settings.cost.currency)


def register(cost_app: typer.Typer) -> None:
    """Add ``dharma cost recommend``."""
    cost_app.command("recommend")(recommend_command)
