"""``dharma stack up | down | status``: the embedded stack."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import typer
from rich.table import Table

from dharma.cli.common import console, err_console, load_settings

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
    """Health of each service, every endpoint, and the broker's load: CPU, memory, retained
    records, partition lookup time, with a warning before it degrades the pipeline."""
    from dharma.infra.stack import EmbeddedStack

    stack = EmbeddedStack(load_settings())
    services = stack.status()
    broker = _broker_load(stack) if any(s.name == "kafka" and s.healthy for s in services) else None
    warnings = broker.warnings(stack.settings.worker.fetch_max_wait_ms) if broker else []
    if as_json:
        doc = {"endpoints": stack.endpoints(),
               "services": {s.name: {"pid": s.pid, "port": s.port, "healthy": s.healthy}
                            for s in services},
               "broker": {**asdict(broker), "retained_records": broker.retained_records,
                          "warnings": warnings} if broker else None}
        typer.echo(json.dumps(doc, indent=2))
        return
    table = Table("service", "pid", "port", "healthy")
    for s in services:
        table.add_row(s.name, str(s.pid or "-"), str(s.port), "yes" if s.healthy else "no")
    console.print(table)
    _print_endpoints(stack.endpoints())
    if broker:
        _print_broker(broker, warnings)


def _broker_load(stack: Any) -> Any:
    try:
        return stack.broker_load()
    except Exception as exc:  # the status of the other services is still worth showing
        err_console.print(f"[yellow]broker load unavailable:[/] {exc!r}")
        return None


def _print_broker(broker: Any, warnings: list[str]) -> None:
    topic, scan = broker.slowest()
    console.print(f"broker: {broker.cpu_percent:.0f}% of a core, {broker.rss_mb:.0f} MB, "
                  f"{broker.retained_records:,} records retained; slowest lookups: "
                  f"{topic or '-'} {scan:.1f} ms")
    for warning in warnings:
        console.print(f"[bold yellow]warning:[/] {warning}")
    if warnings:
        console.print("  the embedded broker keeps every record: restart it (`dharma stack "
                      "down`, losing its data) or use Kafka (docs/broker.md)")


def _print_endpoints(endpoints: dict[str, str]) -> None:
    for name, value in endpoints.items():
        console.print(f"  {name:16} {value}")


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
