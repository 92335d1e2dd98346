"""``dharma worker``: one Faust worker in the foreground, or its topology described."""

from __future__ import annotations

import typer
from rich.table import Table

from dharma.cli.common import console, err_console, load_settings, setup_logging
from dharma.topologies import Topology, TopologyError
from dharma.topologies import topology as named_topology
from dharma.topologies.topology import COLUMNS


def describe_table(value: Topology) -> Table:
    """``value`` as a rich table: one row per capability."""
    table = Table(title=f"topology {value.name}", title_justify="left")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in value.rows():  # one topic or sink a line, so that nothing is cut
        table.add_row(*(cell.replace(", ", "\n") for cell in row))
    return table


def worker(
    topology: str = typer.Option("ingest", help="Which topology to run (see --describe)."),
    describe: bool = typer.Option(False, "--describe",
                                  help="Print what the topology runs, and exit."),
    markdown: bool = typer.Option(False, "--markdown",
                                  help="With --describe: a Markdown table (docs)."),
    log_level: str = typer.Option("warning", help="debug, info, warning or error."),
    setup: bool = typer.Option(True, help="Create topics and register contracts first."),
    dry_run: bool = typer.Option(False, "--dry-run", help="healing: decide and publish every "
                                 "remediation, request none (DHARMA_HEALING_DRY_RUN)."),
) -> None:
    """Run one worker against whatever the settings point at, until Ctrl-C."""
    from dharma.streams.admin import create_topics, register_schemas
    from dharma.streams.app import run_worker
    from dharma.streams.metrics import PipelineMetrics

    settings = load_settings()
    if dry_run:
        healing = settings.healing.model_copy(update={"dry_run": True})
        settings = settings.model_copy(update={"healing": healing})
    try:
        value = named_topology(topology, settings)
    except TopologyError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if describe:
        console.print(value.markdown() if markdown else describe_table(value),
                      markup=False, highlight=False, soft_wrap=markdown)
        return
    setup_logging(log_level)
    if setup:
        create_topics(settings)
        register_schemas(settings)
    metrics = PipelineMetrics()
    port = metrics.serve(settings.worker.metrics_port)
    app = value.build(metrics)
    console.print(f"worker [bold]{topology}[/] ({app.conf.id}) on "
                  f"{settings.kafka.bootstrap_servers}; metrics at http://127.0.0.1:{port}/metrics")
    run_worker(app, log_level)


def register(app: typer.Typer) -> None:
    app.command()(worker)
