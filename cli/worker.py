"""``dharma worker``: one Faust worker in the foreground."""

from __future__ import annotations

import typer

from dharma.cli.common import console, load_settings, setup_logging


def worker(
    topology: str = typer.Option("ingest", help="Which agents to run (see topologies/)."),
    log_level: str = typer.Option("warning", help="debug, info, warning or error."),
    setup: bool = typer.Option(True, help="Create topics and register contracts first."),
) -> None:
    """Run one worker against whatever the settings point at, until Ctrl-C."""
    from dharma.streams.admin import create_topics, register_schemas
    from dharma.streams.app import run_worker
    from dharma.streams.metrics import PipelineMetrics
    from dharma.topologies import get_topology

    setup_logging(log_level)
    settings = load_settings()
    if setup:
        create_topics(settings)
        register_schemas(settings)
    metrics = PipelineMetrics()
    port = metrics.serve(settings.worker.metrics_port)
    app = get_topology(topology)(settings, metrics)
    console.print(f"worker [bold]{topology}[/] ({app.conf.id}) on "
                  f"{settings.kafka.bootstrap_servers}; metrics at http://127.0.0.1:{port}/metrics")
    run_worker(app, log_level)


def register(app: typer.Typer) -> None:
    app.command()(worker)
