"""``dharma schemas register | check`` and ``dharma topics create``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from dharma.cli.common import console, load_settings

schemas_app = typer.Typer(help="Avro contracts and the schema registry.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics of the design.", no_args_is_help=True)

DIR_OPTION = typer.Option(
    None, "--dir", exists=True, file_okay=False,
    help="Read the contracts from this folder instead of the packaged schemas/.")


@schemas_app.command("register")
def register_cmd(schemas_dir: Path | None = DIR_OPTION) -> None:
    """Register every contract in schemas/ under its subject."""
    from dharma.streams.admin import register_schemas

    table = Table("subject", "id")
    for subject, sid in register_schemas(load_settings(), schemas_dir).items():
        table.add_row(subject, str(sid))
    console.print(table)


@schemas_app.command("check")
def check_cmd(schemas_dir: Path | None = DIR_OPTION) -> None:
    """Check every local contract against the registry's compatibility rules."""
    from dharma.streams.admin import check_schemas

    reports = check_schemas(load_settings(), schemas_dir)
    table = Table("subject", "registered", "compatible")
    for r in reports:
        table.add_row(r.subject, "yes" if r.registered else "no",
                      "[green]yes[/]" if r.compatible else "[red]NO[/]")
    console.print(table)
    if not all(r.compatible for r in reports):
        raise typer.Exit(1)


@topics_app.command("create")
def create_cmd() -> None:
    """Create the design's topics and their dead-letter topics (idempotent)."""
    from dharma.streams.admin import create_topics
    from dharma.streams.topics import by_name

    table = Table("topic", "partitions", "outcome")
    for name, outcome in create_topics(load_settings()).items():
        table.add_row(name, str(by_name(name).partitions), outcome)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(schemas_app, name="schemas")
    app.add_typer(topics_app, name="topics")
