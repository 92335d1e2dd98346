"""``dharma up``: the embedded stack, the workers, the generator and the live page, live in the
terminal.

Ctrl-C stops everything this command started (workers, generator, and the
stack if it was not already running), and waits for it to be gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import typer
from rich.markup import escape

from dharma.cli.common import console, err_console, load_settings

DEFAULT_TOPOLOGIES = ("ingest", "anomaly", "trust", "cmdb", "healing", "cost")
#: Topologies ``dharma up`` leaves out: the synthetic estate is the demo's executor, and
#: the webhook executor would answer the same remediation requests a second time.
NOT_IN_DEMO = ("executor",)
#: The demo's incident: a memory leak once detectors have warmed up; the estate is an
#: executor (``generate --executor``), so it lasts until the right remediation arrives.
DEMO_INCIDENTS = ("memory_leak:web-server-01@90s",)
METRICS_BASE_PORT = 9464
#: The generator replays compressed history (a day's run spans weeks of event time),
#: so the demo's trust worker accepts requests that old instead of denying them stale.
DEMO_TRUST = {"DHARMA_TRUST_MAX_REQUEST_AGE_S": os.environ.get(
    "DHARMA_TRUST_MAX_REQUEST_AGE_S", str(400 * 86_400))}


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "dharma.cli", *args],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **env}, start_new_session=True)


def _terminate(procs: list[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    """SIGTERM each child and its descendants; SIGKILL what outlives ``timeout``."""
    family: list[psutil.Process] = []
    for proc in procs:
        try:
            parent = psutil.Process(proc.pid)
            family += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for p in family:
        with suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for p in alive:
        with suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    for proc in procs:
        proc.poll()


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop everything, even where a shell started this
    command in the background with SIGINT ignored."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _is_ordinary(topic: str, value: dict[str, Any]) -> bool:
    """A normal anomaly score: printed only as a sample."""
    return topic == "ml.predictions" and value.get("kind") == "anomaly" and not value["is_anomaly"]


def _show(topic: str, value: dict[str, Any]) -> None:
    if topic.endswith(".dlq"):
        console.print(f"[yellow]dead letter[/] {value['topic']}: {value['reason']}")
    elif topic == "alerts.notifications":
        colour = "red" if value["status"] == "firing" else "green"
        console.print(f"[bold {colour}]ALERT {value['status']}[/] [{value['severity']}] "
                      f"{value['summary']}")
    elif value.get("kind") == "anomaly":
        console.print(f"[magenta]prediction[/] {value['source']} {value['metric']} "
                      f"value={value['value']:.2f} score={value['anomaly_score']:.2f}"
                      f"{' [bold red]ANOMALY[/]' if value['is_anomaly'] else ''}")
    elif value.get("type") == "incident":  # what a topic carries is escaped, never markup
        attrs = value["attributes"]
        confidence = f" ({attrs['confidence']:.2f})" if attrs.get("confidence") is not None else ""
        mttr = f", MTTR {attrs['mttr_ms'] / 60_000:.1f} min" if attrs.get("mttr_ms") else ""
        root = attrs.get("root_cause") or value["resource_id"]
        console.print(f"[bold blue]incident {attrs['status']}[/] " + escape(
            f"{attrs['incident_id']} root {root}: {attrs['category']}{confidence}, "
            f"{attrs['title']}{mttr}"), highlight=False)
    elif value.get("type") == "remediation":
        attrs = value["attributes"]
        guard = f" (guard {attrs['guard']})" if attrs.get("guard") else ""
        console.print(f"[bold blue]remediation {attrs['status']}[/] " + escape(
            f"{attrs['action']} on {value['resource_id']}{guard}: {attrs['reason']}"),
            highlight=False)
    elif value.get("kind") == "trust_decision":
        console.print(f"[cyan]access[/] {value['user_id']} {value['action']} {value['resource']}"
                      f" → {value['decision']} (trust {value['trust_score']:.2f})")


def up(
    rate: float = typer.Option(200.0, help="Generator events per second."),
    topology: list[str] = typer.Option(list(DEFAULT_TOPOLOGIES), help="Topologies to run."),
    sample_every: int = typer.Option(50, help="Print one in N ordinary predictions."),
    days: float = typer.Option(0.05, help="Simulated days per generator hour (compression)."),
    inject: list[str] = typer.Option(list(DEMO_INCIDENTS), help="Incidents the generator "
                                     "injects, CATEGORY:RESOURCE@SECONDS (see generate)."),
) -> None:
    """Run the whole pipeline on the embedded stack and show it working, until Ctrl-C."""
    from dharma.infra.stack import EmbeddedStack, StackError
    from dharma.streams.admin import create_topics, register_schemas
    from dharma.topologies import TOPOLOGIES

    if unknown := [name for name in topology if name not in TOPOLOGIES]:
        err_console.print(f"[red]error:[/] unknown topology {', '.join(map(repr, unknown))}; "
                          f"choose from {', '.join(TOPOLOGIES)}")
        raise typer.Exit(2)
    _stop_on_signals()
    settings = load_settings()
    stack = EmbeddedStack(settings)
    children: list[subprocess.Popen[bytes]] = []
    started: list[str] = []
    page: _Page | None = None
    try:
        with console.status("starting the embedded stack..."):
            started = stack.up()
            create_topics(settings)
            register_schemas(settings)
        console.print(f"stack ready: Kafka {settings.kafka.bootstrap_servers}, registry "
                      f"{settings.registry.url}, state in {stack.state_dir}")
        logs = stack.state_dir / "logs"
        for i, name in enumerate(topology):
            port = METRICS_BASE_PORT + i
            children.append(_spawn(["worker", "--topology", name, "--no-setup"],
                                   logs / f"worker-{name}.log",
                                   {"DHARMA_WORKER_METRICS_PORT": str(port), **DEMO_TRUST}))
            console.print(f"worker [bold]{name}[/]: metrics at http://127.0.0.1:{port}/metrics,"
                          f" log {logs / f'worker-{name}.log'}")
        page = _serve_api(settings, children, logs)
        injected = [arg for spec in inject for arg in ("--inject", spec)]
        children.append(_spawn(["generate", "--rate", str(rate), "--duration", "86400",
                                "--days", str(days * 24), "--quiet", "--executor", *injected],
                               logs / "generate.log", {}))
        console.print("generator running; live output follows (Ctrl-C stops everything)")
        console.print(f"live page: [bold]{page.url}[/]", soft_wrap=True)  # one line to copy
        _watch(settings, sample_every, children)
    except StackError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        _terminate(children)
        if page is not None:
            page.revoke(settings)
        if started:
            stack.down()
        console.print("stopped: nothing left running" if started else "stopped workers and "
                      "generator (the stack was already running and is left up)")


class _Page(NamedTuple):
    """The live page of this run: its URL carries an admin token revoked when ``up`` stops."""

    url: str
    token_id: str

    def revoke(self, settings: Any) -> None:
        from dharma.sinks.api_tokens import revoke_token

        with suppress(Exception):  # the stack may be gone already: the token expires anyway
            revoke_token(settings.postgres.dsn.get_secret_value(), self.token_id)


def _serve_api(settings: Any, children: list[subprocess.Popen[bytes]], logs: Path) -> _Page:
    """Start the API and live page; its URL with a day's admin token in the fragment (never
    sent to the server, never in its logs)."""
    from dharma.cli.api_token import issue_token

    host, port = settings.api.host, settings.api.port
    children.append(_spawn(["api", "serve", "--host", host, "--port", str(port)],
                           logs / "api.log", {}))
    issued = issue_token(settings, "operator", ["admin"], mfa=True, ttl_days=1)
    console.print(f"API: http://{host}:{port}/api/v1 (OpenAPI: /api/v1/openapi.json), "
                  f"log {logs / 'api.log'}")
    return _Page(f"http://{host}:{port}/#token={issued.token}", issued.row.token_id)


def _watch(settings: Any, sample_every: int, children: list[subprocess.Popen[bytes]]) -> None:
    """Print alerts, anomalies, decisions and dead letters as they arrive."""
    from dharma.streams.tailer import Tailer
    from dharma.streams.topics import (
        ALERTS,
        DEAD_LETTER_TOPICS,
        INFRASTRUCTURE_EVENTS,
        PREDICTIONS,
    )

    topics = [PREDICTIONS.name, ALERTS.name, INFRASTRUCTURE_EVENTS.name,
              *(t.name for t in DEAD_LETTER_TOPICS)]
    seen = 0
    with Tailer(settings, topics) as tailer:
        while True:
            for topic, value in tailer.poll(0.5):
                ordinary = _is_ordinary(topic, value)
                seen += ordinary
                if not ordinary or seen % sample_every == 0:
                    _show(topic, value)
            dead = [c for c in children if c.poll() is not None]
            if dead:
                from dharma.infra.stack import StackError

                command = " ".join(str(a) for a in list(dead[0].args)[3:])  # type: ignore[arg-type]  # Popen.args is a list here
                raise StackError(f"{command} exited with code {dead[0].returncode}; "
                                 "see the logs in the state directory")


def register(app: typer.Typer) -> None:
    app.command()(up)
