"""``dharma generate``: the synthetic source, produced to Kafka with Confluent's Avro serializer."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dharma.cli.common import console, load_settings


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
) -> None:
    """Produce realistic telemetry, infrastructure events and access requests."""
    from dharma.streams.admin import registry_client
    from dharma.streams.producer import AvroProducer, batching_producer
    from dharma.synthetic import plan_source, write_labels

    settings = load_settings()
    end_ms = int(time.time() * 1000)
    source, plan = plan_source(seed, rate=rate, duration_s=duration, end_ms=end_ms,
                               days=days, bad_fraction=bad_fraction)
    producer = AvroProducer(batching_producer(settings, linger_ms), registry_client(settings))
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
                while (pause := due - time.monotonic()) > 0:
                    producer.poll(min(pause, 0.05))
        except KeyboardInterrupt:
            pass
        finally:
            producer.flush()
    paths = write_labels(labels_dir, source.ground_truth(), source.access_truth())
    elapsed = time.monotonic() - started
    console.print(f"sent {sent} events in {elapsed:.1f}s ({sent / max(elapsed, 1e-9):.0f}/s); "
                  f"ground truth in {', '.join(str(p) for p in paths)}")


def register(app: typer.Typer) -> None:
    app.command()(generate)
