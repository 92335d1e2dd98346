"""What the page tests share: Debian's chromium under Playwright, where screenshots go,
and the generator run as ``dharma up`` runs it (an estate answering remediations, an
incident injected at a chosen second).

No browser is downloaded: Playwright drives the chromium on PATH (``make browser``
installs Debian's package), and a machine without one fails the tests with that advice.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from dharma.synthetic import SyntheticSource

REPO = Path(__file__).resolve().parents[3]
INFRA = "infrastructure.events"


def chromium_path() -> str:
    """Debian's chromium, or a failure saying how to install it (never a skip)."""
    path = shutil.which("chromium")
    if path is None:
        raise AssertionError("chromium is not installed: run `make browser` (Debian's "
                             "chromium package) to run the page tests")
    return path


def artifacts_dir() -> Path:
    """Where the page tests save screenshots: ``$DHARMA_TEST_ARTIFACTS/page`` or
    ``.dharma/test-artifacts/page`` in the checkout (gitignored)."""
    base = os.environ.get("DHARMA_TEST_ARTIFACTS") or REPO / ".dharma" / "test-artifacts"
    path = Path(base) / "page"
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_until_ready(workers: list[Any], poll: Callable[..., Any], timeout: float = 120) -> None:
    """Poll the workers' logs until each has joined its group and says Faust's ``Ready``."""
    poll(lambda: all("Ready" in w.output() for w in workers), "the workers ready",
         timeout=timeout, describe=lambda: "; ".join(
             f"{w.topology}: {w.output()[-800:]}" for w in workers if "Ready" not in w.output()))


class _FirstRecord:
    """Watches ``infrastructure.events`` from its current end for the first record of a
    generator run (its event id is fixed by the seed), without a consumer group."""

    def __init__(self, settings: Any, seed: int) -> None:
        self.needle = next(SyntheticSource(seed, 0).ticks())[0].value["event_id"].encode()
        self.consumer = Consumer({**settings.kafka.confluent_config(),
                                  "group.id": f"page-{uuid.uuid4().hex[:8]}",
                                  "enable.auto.commit": False, "log_level": 3})
        parts = self.consumer.list_topics(INFRA, timeout=10).topics[INFRA].partitions
        self.consumer.assign([TopicPartition(INFRA, p, self.consumer.get_watermark_offsets(
            TopicPartition(INFRA, p), timeout=10)[1]) for p in parts])

    def seen(self) -> bool:
        return any(not m.error() and self.needle in (m.value() or b"")
                   for m in self.consumer.consume(500, 0.2))

    def close(self) -> None:
        self.consumer.close()


@dataclass
class GeneratorRun:
    """A running ``dharma generate``: ``started`` is when its first record was on the bus."""

    proc: subprocess.Popen[bytes]
    log: Path
    started: float

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def generator(settings: Any, env: dict[str, str], log: Path, poll: Callable[..., Any],
              inject: str, rate: float = 200) -> Iterator[GeneratorRun]:
    """``dharma generate --executor --inject INJECT`` until the block ends (then
    interrupted, and killed if it does not finish)."""
    seed = 1 + uuid.uuid4().int % (1 << 30)
    first = _FirstRecord(settings, seed)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dharma.cli", "generate", "--executor", "--quiet",
             "--rate", str(rate), "--duration", "900", "--seed", str(seed), "--linger-ms",
             "100", "--labels-dir", str(log.parent), "--inject", inject],
            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        poll(first.seen, "the generator's first record", timeout=120,
             describe=lambda: f"exit {proc.poll()}: {log.read_text(errors='replace')[-2000:]}")
        yield GeneratorRun(proc, log, time.monotonic())
    finally:
        first.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:  # never left running: it answers remediations
            proc.kill()
            proc.wait(10)
