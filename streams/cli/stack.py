"""``dharma stack up | down | status``: the embedded stack."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from dharma.streams.cli.common import console, err_console, load_settings

stack_app = typer.Typer(help="Start, stop and inspect the embedded stack on loopback.",
                        no_args_is_help=True)


@stack_app.command()
def up() -> None:
    """Start the broker, registry, PostgreSQL and Redis/FalkorDB; wait until healthy."""
    from dharma.infra.stack import EmbeddedStack, StackError
    from dharma.streams.admin import create_topics, register_schemas

    stack = EmbeddedStack(load_settings())
    try:
        with console.status("starting the embedded stack..."):
            started = stack.up()
            create_topics(stack.settings)
            register_schemas(stack.settings)
    except StackError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"ready ({', '.join(started) or 'already running'}): state in {stack.state_dir}")
    _print_endpoints(stack.endpoints())


@stack_app.command()
def down() -> None:
    """Stop every process of the embedded stack."""
    from dharma.infra.stack import EmbeddedStack

    stopped = EmbeddedStack(load_settings()).down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack_app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Health of each service and every endpoint."""
    from dharma.infra.stack import EmbeddedStack

    stack = EmbeddedStack(load_settings())
    services = stack.status()
    if as_json:
        doc = {"endpoints": stack.endpoints(),
               "services": {s.name: {"pid": s.pid, "port": s.port, "healthy": s.healthy}
                            for s in services}}
        typer.echo(json.dumps(doc, indent=2))
        return
    table = Table("service", "pid", "port", "healthy")
    for s in services:
        table.add_row(s.name, str(s.pid or "-"), str(s.port), "yes" if s.healthy else "no")
    console.print(table)
    _print_endpoints(stack.endpoints())


def _print_endpoints(endpoints: dict[str, str]) -> None:
    for name, value in endpoints.items():
        console.print(f"  {name:16} {value}")


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
