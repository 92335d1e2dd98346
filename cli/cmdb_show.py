"""``dharma cmdb show ID``: an asset and its last changes.

Now, the node as the graph holds it; with ``--at``, the asset as its change history
in PostgreSQL gives it at that instant (the newest asset change at or before it, and
whether it was live then).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from dharma.cli.cmdb import AT_HELP, JSON_HELP, ask, emit_json, iso, parse_at, plain, say
from dharma.cli.common import console, load_settings
from dharma.sinks.asset_changes import ChangeRow

__all__ = ["show"]


async def _asset_at(dsn: str, resource_id: str, at: int) -> dict[str, Any]:
    """The asset as its history up to ``at`` leaves it (status live or retired then)."""
    from dharma.agents.cmdb.logic import project
    from dharma.agents.cmdb.state import change_of
    from dharma.sinks.asset_changes import AssetChangeSink
    from dharma.sinks.cmdb import UnknownAsset

    history = AssetChangeSink(dsn)
    await history.setup()
    try:
        rows = (await history.histories([resource_id])).get(resource_id, [])
    finally:
        await history.close()
    past = [change_of(row) for row in rows if row.ts <= at and row.kind == "asset"]
    if not past:
        raise UnknownAsset(f"no change of asset {resource_id!r} at or before {iso(at)}")
    return project(past).row()


async def _changes(dsn: str, resource_id: str, at: int | None, limit: int) -> list[ChangeRow]:
    import psycopg

    from dharma.sinks.asset_changes import changes_of

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await changes_of(conn, resource_id, until=at, limit=limit)


def _change_json(row: ChangeRow) -> dict[str, Any]:
    return {"event_id": row.event_id, "ts": row.ts, "kind": row.kind, "action": row.action,
            "resource_id": row.resource_id, "attributes": row.attributes}


def _print(asset: dict[str, Any], changes: list[ChangeRow], at: int | None) -> None:
    title = f"{asset['id']}" + (f" at {iso(at)}" if at is not None else "")
    table = Table("property", "value", title=Text(title))
    for key in sorted(asset):
        value = asset[key]
        shown = iso(value) if key in ("changed_at", "valid_from", "valid_to", "sync_tag",
                                       "stale_since") and isinstance(value, int) else value
        table.add_row(*plain(key, "-" if shown is None else shown))
    console.print(table)
    log = Table("time", "kind", "action", "change", "event id", title="last changes")
    for row in changes:
        what = (f"-[{row.attributes.get('relation')}]-> {row.attributes.get('target_id')}"
                if row.kind == "dependency" else
                ", ".join(f"{k}={v}" for k, v in row.attributes.items() if v is not None))
        log.add_row(*plain(iso(row.ts), row.kind, row.action, what, row.event_id))
    if changes:
        console.print(log)
    else:
        say("no changes recorded")


def show(
    resource_id: str = typer.Argument(..., help="The asset's id."),
    at: str | None = typer.Option(None, help=f"{AT_HELP} The attributes are then those of "
                                  "the newest asset change at or before it (from the change "
                                  "history), and only changes up to then are listed."),
    changes: int = typer.Option(10, min=0, help="How many of its last changes to list."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """An asset, its attributes (now, or --at then) and its last changes (of the asset and
    of the edges from it, newest first)."""
    at_ms = parse_at(at)
    dsn = load_settings().postgres.dsn.get_secret_value()

    async def question(cmdb: Any) -> tuple[dict[str, Any], list[ChangeRow]]:
        asset = await cmdb.asset(resource_id)
        if at_ms is not None:
            asset = await _asset_at(dsn, resource_id, at_ms)
        return asset, await _changes(dsn, resource_id, at_ms, changes)

    asset, rows = ask(question)
    if as_json:
        emit_json({"asset": asset, "at": at_ms, "changes": [_change_json(r) for r in rows]})
    else:
        _print(asset, rows, at_ms)
