"""``dharma cmdb``: ask the CMDB graph questions, reconcile it with an inventory, rebuild it.

    dharma cmdb show db-primary-01 --changes 5
    dharma cmdb blast-radius db-primary-01 --depth 3 --json
    dharma cmdb path web-server-01 db-primary-01 --at 2026-12-01T18:00:00Z
    dharma cmdb stats --json
    dharma cmdb sync inventory.csv --source scanner
    dharma cmdb rebuild

Every question takes ``--json`` (machine output) and, where it makes sense, ``--at``
(the estate as it was then).  An unknown asset, no path, a graph or database that
cannot be reached: a message on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
import atexit
import json
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dharma.cli.common import console, err_console, load_settings

if TYPE_CHECKING:
    from dharma.sinks.graph import Graph
    from dharma.streams.settings import Settings

__all__ = ["ask", "cmdb_app", "cmdb_graph", "emit_json", "parse_at", "plain", "register", "say"]

T = TypeVar("T")

cmdb_app = typer.Typer(help="Questions to the CMDB graph, reconciliation, rebuild.",
                       no_args_is_help=True)

AT_HELP = ("Answer as the estate was at this instant: ISO 8601 with a zone "
           "(2026-12-01T18:00:00Z) or epoch milliseconds.")
JSON_HELP = "Machine-readable output (JSON on stdout)."


def parse_at(text: str | None) -> int | None:
    """Epoch milliseconds of ``--at``: epoch ms, or an ISO 8601 time with its zone.

    >>> parse_at("1796148000000"), parse_at("2026-12-01T18:00:00Z")
    (1796148000000, 1796148000000)
    >>> parse_at("2026-12-01T19:00:00+01:00")
    1796148000000
    """
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: ISO 8601 (2026-12-01T18:00:00Z) or epoch "
                                 "milliseconds") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no zone: add Z or +HH:MM")
    return int(moment.timestamp() * 1000)


def iso(ms: int | None) -> str:
    """A time in ms as ISO 8601 UTC (``-`` for none).

    >>> iso(1796148000000), iso(10**20)
    ('2026-12-01T18:00:00.000Z', '100000000000000000000')
    """
    if ms is None or ms < 0:
        return "-"
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, ValueError, OSError):  # beyond the calendar: the number itself
        return str(ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextmanager
def failures() -> Iterator[None]:
    """Errors a user can act on (unknown asset, bad file, a store away) as one line on
    stderr and exit code 1, instead of a traceback."""
    import neo4j
    import psycopg
    import redis
    from confluent_kafka import KafkaException

    from dharma.streams.errors import DharmaError

    try:
        yield
    except (DharmaError, psycopg.Error, KafkaException, redis.RedisError, OSError,
            neo4j.exceptions.DriverError, neo4j.exceptions.Neo4jError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


_graphs: dict[str, Graph] = {}


def cmdb_graph(settings: Settings) -> Graph:
    """The process's one client of the graph ``settings`` name (Neo4j's documentation:
    one driver per application), closed at exit."""
    from dharma.topologies.capabilities import graph

    if (client := _graphs.get(settings.graph.uri)) is None:
        client = _graphs[settings.graph.uri] = graph(settings)
        atexit.register(_close, client)
    return client


def _close(client: Graph) -> None:
    with suppress(Exception):  # at exit: a connection of a finished event loop may be gone
        asyncio.run(client.close())


def ask(question: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """Run ``question(cmdb)`` against the graph the settings name."""
    from dharma.sinks.cmdb import Cmdb

    with failures():
        return asyncio.run(question(Cmdb(cmdb_graph(load_settings()))))


def say(text: str, err: bool = False) -> None:
    """A line of text as it is (ids can hold anything, rich markup included)."""
    (err_console if err else console).print(text, markup=False, highlight=False)


def plain(*cells: object) -> list[Text]:
    """Table cells shown as they are, never read as markup."""
    return [Text(str(cell)) for cell in cells]


def emit_json(value: Any) -> None:
    """``value`` as JSON on stdout, unstyled."""
    typer.echo(json.dumps(value, sort_keys=True, default=str))


@cmdb_app.command("blast-radius")
def blast_radius(
    resource_id: str = typer.Argument(..., help="The asset that fails."),
    depth: int | None = typer.Option(None, min=1, help="Hops to follow (all by default)."),
    at: str | None = typer.Option(None, help=AT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """What transitively depends on RESOURCE_ID (DEPENDS_ON and RUNS_ON edges followed
    backwards, live ones only), each at its shortest distance."""
    at_ms = parse_at(at)
    result = ask(lambda cmdb: cmdb.blast_radius(resource_id, depth, at_ms))
    if as_json:
        emit_json(result.to_json())
        return
    if not result.impacted:
        say(f"nothing depends on {resource_id}")
        return
    table = Table("depth", "impacted asset", title=Text(f"blast radius of {resource_id}"))
    for impact in result.impacted:
        table.add_row(*plain(impact.depth, impact.id))
    console.print(table)


@cmdb_app.command()
def path(
    source: str = typer.Argument(..., help="The dependant."),
    target: str = typer.Argument(..., help="What it may depend on, directly or not."),
    at: str | None = typer.Option(None, help=AT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The shortest chain of dependency edges from SOURCE to TARGET; exit code 1 when
    there is none."""
    at_ms = parse_at(at)
    hops = ask(lambda cmdb: cmdb.path(source, target, at_ms))
    if as_json:
        emit_json({"source": source, "target": target,
                   "path": None if hops is None else [asdict(h) for h in hops]})
    elif hops is not None:
        say(" ".join([source, *(f"-[{h.relation}]-> {h.target}" for h in hops)]))
    if hops is None:
        say(f"no dependency path from {source} to {target}", err=True)
        raise typer.Exit(1)


@cmdb_app.command()
def stats(
    at: str | None = typer.Option(None, help=AT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Assets by type, team and env; orphans (no edge either way); dangling placeholders
    (named by an edge, never described); stale and retired counts."""
    at_ms = parse_at(at)
    result = ask(lambda cmdb: cmdb.stats(at_ms))
    if as_json:
        emit_json(result)
        return
    say(f"{result['assets']} assets, {result['retired']} retired, {result['stale']} stale")
    for name in ("by_type", "by_team", "by_env"):
        table = Table(name.removeprefix("by_"), "assets")
        for key, count in result[name].items():
            table.add_row(*plain(key, count))
        console.print(table)
    for name in ("orphans", "placeholders"):
        say(f"{name}: {', '.join(result[name]) or 'none'}")


def register(app: typer.Typer) -> None:
    """Add the ``cmdb`` command group."""
    from dharma.cli import cmdb_show, cmdb_sync

    cmdb_app.command("show")(cmdb_show.show)
    cmdb_app.command("sync")(cmdb_sync.sync)
    cmdb_app.command("syncs")(cmdb_sync.syncs)
    cmdb_app.command("rebuild")(cmdb_sync.rebuild)
    app.add_typer(cmdb_app, name="cmdb")
