"""``dharma bench ingest | anomaly | trust | broker | soak | cmdb | healing | classify | cost
| forecast | api | page``:
figures on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from dharma.cli.common import console

bench_app = typer.Typer(help="Benchmarks, each against a private embedded stack.",
                        no_args_is_help=True)


def _report(name: str, figures: dict[str, object]) -> None:
    console.print(f"[bold]{name}[/]")
    for key, value in figures.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            _print_rows(key, value)
        else:
            console.print(f"  {key:36} {value}")
    typer.echo(json.dumps({name: figures}))


def _print_rows(name: str, rows: list[dict[str, object]]) -> None:
    """Rows of dicts (per case, per interval) as a table; nested dicts flattened."""
    flat = [{f"{k}.{kk}" if isinstance(v, dict) else k: vv
             for k, v in row.items() for kk, vv in (v.items() if isinstance(v, dict)
                                                     else [(k, v)])} for row in rows]
    table = Table(*flat[0], title=name)
    for row in flat:
        table.add_row(*(str(row.get(c, "")) for c in flat[0]))
    console.print(table)


@bench_app.command()
def cost(events: int = typer.Option(20_000, help="Events per phase (lifecycle, usage)."),
         rounds: int = typer.Option(2, help="Rounds of both phases."),
         forecasts: int = typer.Option(50, help="Forecasts timed after warm-up."),
         span_hours: float = typer.Option(2.0, help="Lifecycle events are dated over the "
                                          "last this many hours (more: a backfill, whose "
                                          "past hours are accrued too).")) -> None:
    """Lifecycle and usage events/s through the cost topology against a Faust
    consume-and-decode agent on the same events; forecast time per series."""
    from dharma.bench.cost import run

    _report("cost", run(events=events, rounds=rounds, forecasts=forecasts,
                        span_hours=span_hours))


@bench_app.command()
def ingest(events: int = typer.Option(100_000), series: int = typer.Option(1_000)) -> None:
    """Validation agent into PostgreSQL, against a bare Avro consumer."""
    from dharma.bench.ingest import run

    _report("ingest", run(events=events, series=series))


@bench_app.command()
def anomaly(events: int = typer.Option(60_000, help="Events per throughput run.")) -> None:
    """Anomaly detector cost, topology events/s (1k, 10k series, 2 workers), latency."""
    from dharma.bench.anomaly import run

    _report("anomaly", run(events=events))


@bench_app.command()
def trust(events: int = typer.Option(30_000, help="Access events through Kafka per round."),
          rounds: int = typer.Option(3, help="Trust and baseline runs, each on new events."),
          policies: int = typer.Option(1_000, help="Policies loaded for the latency run.")) -> None:
    """Decisions/s through Kafka against a Faust consume-and-decode agent; in-process
    decision latency with many policies loaded."""
    from dharma.bench.harness import bench_stack
    from dharma.bench.trust_latency import measure_decision_latency
    from dharma.bench.trust_throughput import measure_trust_throughput

    latency = measure_decision_latency(n_policies=policies)
    with bench_stack() as (settings, _env):
        throughput = measure_trust_throughput(settings, n_events=events, rounds=rounds)
    _report("trust", {"throughput": throughput, "latency": latency})


@bench_app.command()
def broker(repeats: int = typer.Option(15, help="Timed requests per figure (median).")) -> None:
    """Request times of the embedded broker against what one partition holds (records,
    record batches): what makes it slower as it retains data."""
    from dharma.bench.broker_cost import run

    _report("broker", run(repeats=repeats))


@bench_app.command()
def soak(load: str = typer.Option("anomaly", help="anomaly (outside producer into one anomaly "
                                  "worker) or pipeline (what `dharma up` runs)."),
         rate: float = typer.Option(2_000.0, help="Events per second offered."),
         minutes: float = typer.Option(10.0, help="How long the load runs."),
         series: int = typer.Option(1_000, help="anomaly: series the events spread over."),
         linger_ms: int = typer.Option(5, help="anomaly: the outside producer's linger.ms."),
         interval_s: float = typer.Option(60.0, help="Seconds between samples.")) -> None:
    """Broker CPU and memory, worker lag (and, for anomaly, produce → prediction latency and
    scored count) under a steady load, per interval, with slopes per 10 minutes."""
    from dharma.bench.soak import run_anomaly, run_pipeline

    if load == "anomaly":
        figures = run_anomaly(int(rate), series, minutes * 60, linger_ms, interval_s)
    elif load == "pipeline":
        figures = run_pipeline(rate, minutes * 60, interval_s)
    else:
        raise typer.BadParameter("--load is anomaly or pipeline")
    _report(f"soak {load}", figures)


@bench_app.command()
def cmdb(events: int = typer.Option(20_000, help="Asset and dependency events per round."),
         rounds: int = typer.Option(2, help="CMDB worker and baseline runs, alternating."),
         assets: int = typer.Option(10_000, help="Assets of the estate queried."),
         edges: int = typer.Option(30_000, help="Edges of the estate queried."),
         queries: int = typer.Option(500, help="Blast-radius queries per row.")) -> None:
    """CMDB changes/s through Kafka into PostgreSQL and the graph, against a Faust
    consume-and-decode agent; blast-radius latency (depth 5) on a generated estate."""
    from dharma.bench.cmdb import run

    _report("cmdb", run(events=events, rounds=rounds, assets=assets, edges=edges,
                        queries=queries))


@bench_app.command()
def healing(assets: int = typer.Option(10_000, help="Assets of the estate in the CMDB graph."),
            alerts: int = typer.Option(1_500, help="Alerts of the throughput run."),
            rate: float = typer.Option(5.0, help="Alerts/s of the latency trickle."),
            trickle: int = typer.Option(150, help="Alerts of the latency trickle.")) -> None:
    """Alert → remediation request latency (p50/p99, group wait excluded) and alerts/s
    handled by a healing worker, against a Faust consume-and-decode agent."""
    from dharma.bench.healing import run

    _report("healing", run(assets=assets, alerts=alerts, rate=rate, trickle_alerts=trickle))


@bench_app.command()
def classify(seed: int = typer.Option(7, help="Seed of the synthetic estate."),
             days: float = typer.Option(4.0, help="Simulated days generated."),
             rate: float = typer.Option(36.0, help="Incidents per simulated day.")) -> None:
    """Issue classifier on the generator's labelled incidents: confusion table (rows
    truth, columns predicted), accuracy, per-class recall (no stack needed)."""
    from dharma.bench.healing_classify import run

    _report("classify", run(seed=seed, days=days, incidents_per_day=rate))


@bench_app.command()
def forecast(nab: Path = typer.Option(..., "--nab", help="Folder of timestamp,value CSVs "
                                      "(e.g. NAB's data/realAWSCloudwatch)."),
             n: int = typer.Option(50, help="Series of the forecast time figure.")) -> None:
    """Cost forecast: rolling-origin backtests on the hourly means of the CSVs (horizon
    48 h, MASE against seasonal naive's, interval coverage) and ms per 30-day daily
    forecast after warm-up (no stack needed)."""
    from dharma.bench.cost_forecast import run

    _report("forecast", run(nab, n=n))


@bench_app.command()
def api(series: int = typer.Option(10_000, help="Series held by the API's live views."),
        points: int = typer.Option(20, help="Scores stored per series."),
        decisions: int = typer.Option(100_000, help="Access decisions in the audit table."),
        subscribers: int = typer.Option(50, help="Concurrent live (SSE) subscribers."),
        requests: int = typer.Option(500, help="Cached requests per endpoint and round."),
        rounds: int = typer.Option(2, help="Rounds of the cached requests, and pairs of live "
                                   "phases (without, with subscribers)."),
        uncached: int = typer.Option(200, help="Uncached requests per endpoint (a new "
                                     "token each)."),
        live_seconds: float = typer.Option(20.0, help="Seconds of each live phase."),
        prediction_rate: int = typer.Option(1_000, help="Predictions/s during the live "
                                            "phases (samples/s to the anomaly worker)."),
        alert_rate: int = typer.Option(100, help="Alerts/s during the live phases."),
        seed: int = typer.Option(16, help="Seed of the generated data.")) -> None:
    """Read API p50/p99 per endpoint, cached and uncached, against /api/health on the same
    server; events/s to live subscribers and the pipeline's lag without and with them."""
    from dharma.bench.api import Sizes, run

    _report("api", run(Sizes(
        series=series, points=points, decisions=decisions, requests=requests, rounds=rounds,
        uncached=uncached, subscribers=subscribers, live_seconds=live_seconds,
        prediction_rate=prediction_rate, alert_rate=alert_rate, seed=seed)))


@bench_app.command()
def page(series: int = typer.Option(10_000, help="Series held by the API's live views."),
         points: int = typer.Option(20, help="Scores stored per series."),
         decisions: int = typer.Option(10_000, help="Access decisions in the audit table."),
         rate: int = typer.Option(100, help="Records/s arriving in the loaded phase."),
         high_rate: int = typer.Option(1_000, help="Records/s of a third phase (0: none)."),
         watch_seconds: float = typer.Option(30.0, help="Seconds each phase is watched "
                                             "before its interactions."),
         repeats: int = typer.Option(20, help="Times each interaction is timed per phase."),
         seed: int = typer.Option(16, help="Seed of the generated data.")) -> None:
    """The live page in headless chromium, idle then with events arriving: long tasks,
    frame gaps, search / series / alert interaction latency, JS heap, live stream kept."""
    from dharma.bench.page import Sizes, run

    _report("page", run(Sizes(
        series=series, points=points, decisions=decisions, rate=rate, high_rate=high_rate,
        watch_seconds=watch_seconds, repeats=repeats, seed=seed)))


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
