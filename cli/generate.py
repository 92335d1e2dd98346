"""``dharma generate``: the synthetic source, produced to Kafka with Confluent's Avro serializer.

With ``--executor`` the estate is an executor: the generator reads the remediation
requests on ``infrastructure.events`` (from the end, between ticks) and hands them to
the source, which answers them and heals an incident when the right action arrives
(:mod:`dharma.synthetic.executor`).
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dharma.cli.common import console, err_console, load_settings

logger = logging.getLogger(__name__)


class Requests:
    """Remediation requests on ``infrastructure.events`` from the end of each partition
    at start, decoded with the codec; what cannot be read is skipped and counted."""

    def __init__(self, settings: Any) -> None:
        from confluent_kafka import Consumer, TopicPartition

        from dharma.streams.admin import registry_client
        from dharma.streams.codec import AvroWire
        from dharma.streams.topics import INFRASTRUCTURE_EVENTS

        self.topic = INFRASTRUCTURE_EVENTS
        self.wire = AvroWire(registry_client(settings))
        self.consumer = Consumer({**settings.kafka.confluent_config(),
                                  "group.id": f"dharma-generate-{uuid.uuid4().hex[:8]}",
                                  "enable.auto.commit": False, "log_level": 3})
        name = self.topic.name
        parts = self.consumer.list_topics(name, timeout=10).topics[name].partitions
        self.consumer.assign([TopicPartition(name, p, self.consumer.get_watermark_offsets(
            TopicPartition(name, p), timeout=10)[1]) for p in parts])
        self.read = self.unreadable = 0

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        """The requests that arrived within ``timeout`` seconds."""
        out = []
        for msg in self.consumer.consume(500, timeout):
            if msg.error():
                continue
            try:
                value = self.wire.decode(self.topic.value_subject, msg.value())
            except Exception as exc:  # not ours to dead-letter: the topologies do
                self.unreadable += 1
                logger.warning("unreadable record %s[%s]@%s: %r", msg.topic(), msg.partition(),
                               msg.offset(), exc)
                continue
            if value["type"] == "remediation" and value["attributes"]["status"] == "requested":
                out.append(value)
        self.read += len(out)
        return out

    def close(self) -> None:
        self.consumer.close()


def generate(
    rate: float = typer.Option(200.0, help="Events per second (wall clock)."),
    duration: float = typer.Option(60.0, help="Seconds to run."),
    seed: int = typer.Option(7, help="Seed: the same seed gives the same events."),
    days: float = typer.Option(1.0, help="Simulated days the run spans (time compression)."),
    bad_fraction: float = typer.Option(0.0, help="Share of deliberately bad metric samples."),
    labels_dir: Path = typer.Option(Path(".dharma/generate"), help="Where ground truth goes."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    linger_ms: int = typer.Option(1000, help="How long records wait to leave in one batch "
                                  "(fewer, larger batches keep the embedded broker light)."),
    executor: bool = typer.Option(False, "--executor", help="The estate answers remediation "
                                  "requests: incidents wait for the action that heals them."),
    inject: list[str] = typer.Option([], help="An incident at a chosen time, "
                                     "CATEGORY:RESOURCE@SECONDS (repeatable), e.g. "
                                     "memory_leak:web-server-01@60s."),
) -> None:
    """Produce realistic telemetry, infrastructure events and access requests."""
    from dharma.streams.admin import registry_client
    from dharma.streams.producer import AvroProducer, batching_producer
    from dharma.synthetic import write_labels

    _interrupt_on_signals()
    settings = load_settings()
    try:
        source, plan = _plan(seed, rate, duration, days, bad_fraction, executor, inject)
    except ValueError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    producer = AvroProducer(batching_producer(settings, linger_ms), registry_client(settings))
    requests = Requests(settings) if executor else None
    started = time.monotonic()
    try:
        sent = _run(source, plan, producer, requests, quiet)
    finally:
        producer.flush()
        if requests is not None:
            requests.close()
    paths = write_labels(labels_dir, source.ground_truth(), source.access_truth())
    elapsed = time.monotonic() - started
    answered = f"; answered {requests.read} remediation requests" if requests else ""
    console.print(f"sent {sent} events in {elapsed:.1f}s ({sent / max(elapsed, 1e-9):.0f}/s)"
                  f"{answered}; ground truth in {', '.join(str(p) for p in paths)}")


def _interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM both end the run the same way (flush, then the labels), even
    where this process inherited SIGINT ignored or blocked: Python then leaves it so,
    and the run would only end when killed, its labels unwritten."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _plan(seed: int, rate: float, duration: float, days: float, bad_fraction: float,
          executor: bool, inject: list[str]) -> tuple[Any, Any]:
    """The source and its run plan (the injected incidents placed on the plan's ticks)."""
    from dharma.synthetic import IncidentConfig, ScriptedIncident, SyntheticSource, plan_source

    end_ms = int(time.time() * 1000)
    _, plan = plan_source(seed, rate=rate, duration_s=duration, end_ms=end_ms, days=days,
                          bad_fraction=bad_fraction)
    scripted = tuple(ScriptedIncident.parse(spec, plan.ticks_per_second) for spec in inject)
    incidents = IncidentConfig(scripted=scripted, executor=executor)
    source = SyntheticSource(seed, plan.start_ms, plan.sample_interval_ms,
                             day_length_ms=plan.day_length_ms, incidents=incidents,
                             bad_fraction=bad_fraction)
    return source, plan


def _run(source: Any, plan: Any, producer: Any, requests: Requests | None, quiet: bool) -> int:
    """Produce the plan's ticks at its pace (handing requests to the source between
    ticks); the number of events sent."""
    sent, started = 0, time.monotonic()
    with Progress(TextColumn("[bold]generate[/]"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[sent]} events"), TimeRemainingColumn(),
                  console=console, disable=quiet, transient=False) as progress:
        task = progress.add_task("ticks", total=plan.ticks, sent=0)
        try:
            for i, batch in enumerate(source.ticks(plan.ticks)):
                for emission in batch:
                    producer.produce(emission.topic, emission.key, emission.value)
                sent += len(batch)
                progress.update(task, advance=1, sent=sent)
                due = started + (i + 1) / plan.ticks_per_second
                _serve(source, requests, 0.0)  # at every tick, even one behind its time
                while (pause := due - time.monotonic()) > 0:
                    producer.poll(0 if requests else min(pause, 0.05))
                    _serve(source, requests, min(pause, 0.05))
        except KeyboardInterrupt:
            pass
    return sent


def _serve(source: Any, requests: Requests | None, timeout: float) -> None:
    """Hand the requests that arrive within ``timeout`` to the source."""
    for request in requests.poll(timeout) if requests is not None else ():
        source.execute(request)


def register(app: typer.Typer) -> None:
    app.command()(generate)
