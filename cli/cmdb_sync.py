"""``dharma cmdb sync`` and ``dharma cmdb rebuild``: the commands that write the CMDB.

A sync (Cartography-style reconciliation, :mod:`dharma.sinks.cmdb_sync`): the whole
file is validated first (a bad row changes nothing); the sync is recorded as running
in ``cmdb_syncs`` with a tag (ms, increasing per source); one ``asset`` event per row
(``created`` when the graph has no live node of that id, else ``updated``; dated with
the tag; an id derived from source, tag and asset) and one ``dependency added`` per
listed edge goes to ``infrastructure.events``, for the CMDB worker to apply like any
change; every listed asset is tagged in the graph; then, only when all of that
succeeded and the sync is not ``--partial``, the source's assets not seen are marked
stale.  Anything failing or interrupted before the end marks nothing stale and
records the sync as failed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, NamedTuple

import typer
from rich.table import Table

from dharma.agents.cmdb.inventory import Inventory, inventory_events, parse_inventory
from dharma.cli.cmdb import JSON_HELP, cmdb_graph, emit_json, failures, iso, plain, say
from dharma.cli.common import console, load_settings, produce_all, read_utf8
from dharma.streams.settings import Settings

__all__ = ["SyncReport", "rebuild", "run_sync", "sync", "syncs"]


class SyncReport(NamedTuple):
    source: str
    tag: int
    assets: int
    created: int
    dependencies: int
    stale_marked: int
    partial: bool


def _produce(settings: Settings, events: list[dict[str, Any]]) -> None:
    """Send ``events`` to ``infrastructure.events``; :class:`CliFailure` unless the broker
    acknowledged every one."""
    from dharma.streams.topics import INFRASTRUCTURE_EVENTS

    produce_all(settings, INFRASTRUCTURE_EVENTS.name,
                [(event["resource_id"], event) for event in events], what="event")


async def _reconcile(settings: Settings, inventory: Inventory, source: str, tag: int,
                     partial: bool) -> tuple[int, int]:
    """Events out, assets tagged, unseen ones marked stale: (created, stale marked)."""
    from dharma.sinks.cmdb_sync import GraphSync

    sync = GraphSync(cmdb_graph(settings))
    await sync.setup()
    ids = [asset.resource_id for asset in inventory.assets]
    live = await sync.live(ids)
    _produce(settings, inventory_events(inventory, source, tag, live))
    await sync.mark_seen(source, tag, ids)
    stale = 0 if partial else await sync.mark_stale(source, tag)
    return len(set(ids) - live), stale


def run_sync(settings: Settings, inventory: Inventory, source: str, partial: bool) -> SyncReport:
    """Reconcile the CMDB with ``inventory`` as ``source`` saw it (recorded in
    ``cmdb_syncs``: running, then complete, or failed with its error)."""
    from dharma.sinks.cmdb_sync import SyncLog

    log = SyncLog(settings.postgres.dsn.get_secret_value())
    rows = len(inventory.assets) + len(inventory.dependencies)
    tag = log.begin(source, rows, partial)
    try:
        created, stale = asyncio.run(_reconcile(settings, inventory, source, tag, partial))
    except BaseException as exc:  # interrupted too: recorded, then on its way
        log.finish(source, tag, "failed", error=f"{type(exc).__name__}: {exc}"[:1000])
        raise
    log.finish(source, tag, "complete", stale)
    return SyncReport(source, tag, len(inventory.assets), created,
                      len(inventory.dependencies), stale, partial)


def sync(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="The inventory: .json (a list of assets, or {\"assets\": "
                                "[...], \"dependencies\": [...]}) or .csv (one asset a row)."),
    source: str = typer.Option(..., help="Who discovered it (e.g. aws-scanner): only this "
                               "source's assets can be marked stale."),
    partial: bool = typer.Option(False, help="The file holds only part of the source's "
                                 "estate: tag what it lists, mark nothing stale."),
    fmt: str | None = typer.Option(None, "--format", help="json or csv (default: the file's "
                                   "extension)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Reconcile the CMDB with a discovery tool's inventory: every row becomes an asset
    event; assets of the same source the file does not list are marked stale (never
    deleted), only after a complete sync (a bad file or a failed or --partial sync marks
    nothing stale)."""
    kind = (fmt or file.suffix.lstrip(".")).lower()
    if kind not in ("json", "csv") or not source.strip():
        raise typer.BadParameter("a .json or .csv file (or --format json|csv) and a --source")
    with failures():
        inventory = parse_inventory(read_utf8(file), "json" if kind == "json" else "csv")
        report = run_sync(load_settings(), inventory, source, partial)
    if as_json:
        emit_json({**report._asdict(), "status": "complete"})
        return
    say(f"sync {report.tag} of {source}: {report.assets} assets ({report.created} new), "
        f"{report.dependencies} dependencies sent; {report.stale_marked} marked stale"
        f"{' (partial: none)' if partial else ''}")


def syncs(
    source: str | None = typer.Option(None, help="Only this source's syncs."),
    limit: int = typer.Option(20, min=1, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The last syncs: source, tag, rows, partial, status (running, complete, failed),
    how many assets each marked stale, and why a failed one failed."""
    from dharma.sinks.cmdb_sync import SyncLog

    with failures():
        records = SyncLog(load_settings().postgres.dsn.get_secret_value()).recent(source, limit)
    if as_json:
        emit_json([r._asdict() for r in records])
        return
    table = Table("source", "tag", "rows", "partial", "status", "stale marked", "error")
    for r in records:
        table.add_row(*plain(r.source, iso(r.tag), r.rows, r.partial, r.status, r.stale_marked,
                             r.error or ""))
    console.print(table)


async def _rebuild(settings: Settings, page: int) -> tuple[int, int, int]:
    from dharma.agents.cmdb.state import graph_rows, project_stored
    from dharma.sinks.asset_changes import AssetChangeSink
    from dharma.sinks.graph import GraphSink

    history = AssetChangeSink(settings.postgres.dsn.get_secret_value())
    sink = GraphSink(cmdb_graph(settings))  # the process's client, closed at exit
    keys = assets = edges = 0
    try:
        await history.setup()
        await sink.setup()
        after: str | None = None
        while batch := await history.keys_after(after, page):
            rows = await history.histories(batch)
            states = project_stored(rows)
            await sink.write([graph_rows(*states)])
            keys, assets, edges = keys + len(batch), assets + len(states[0]), \
                edges + len(states[1])
            after = batch[-1]
    finally:
        await history.close()
    return keys, assets, edges


def rebuild(
    page: int = typer.Option(500, min=1, help="Histories read and written per step."),
) -> None:
    """Write every asset and edge of the change history into the graph again (a graph
    lost, or restored from an old backup): the CMDB's own batch step, page by page.
    Safe to repeat, and beside a running worker (a state never replaces a newer one)."""
    with failures():
        keys, assets, edges = asyncio.run(_rebuild(load_settings(), page))
    say(f"rebuilt {assets} assets and {edges} edges from {keys} histories")
