"""Worker subprocesses for integration tests, positioned at the end of their topics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

__all__ = ["WorkerProcess", "start_at_end", "stop_all"]


class WorkerProcess:
    """A ``dharma worker`` subprocess with its own consumer group."""

    def __init__(self, topology: str, env: dict[str, str], log: Path) -> None:
        self.topology, self.log = topology, log
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dharma.cli", "worker", "--topology",
                 self.topology, "--no-setup", "--log-level", "info"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self, sig: int = 15) -> None:
        stop_all([self], sig)

    def _signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def _reap(self, deadline: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError as exc:  # never let a lost log keep the other workers running
            return f"(log unreadable: {exc})"


def stop_all(workers: Iterable[WorkerProcess], sig: int = 15, grace_s: float = 30) -> None:
    """Signal every worker at once, then wait for each (killing what outlives ``grace_s``):
    their graceful shutdowns overlap instead of adding up."""
    workers = list(workers)
    for worker in workers:
        worker._signal(sig)
    deadline = time.monotonic() + grace_s
    for worker in workers:
        worker._reap(deadline)


def start_at_end(settings: Any, topology: str, app_id: str) -> None:
    """Commit the current end of every topic ``topology`` consumes as the offsets of the
    consumer group of a worker of ``app_id`` (the group Faust names ``{app_id}-{topology}``).

    A fresh group would otherwise read each topic from its beginning (the workers'
    ``earliest``): everything the session's earlier tests produced, decided and emitted
    again, a cost that grows with every test.  Positioned at the end, a test's worker
    reads what the test produces once it is started (and, as the embedded broker reports
    a partition's end short of its last record batch, at most that batch before).
    """
    from dharma.topologies import topology as topology_named

    config = {**settings.kafka.confluent_config(), "enable.auto.commit": False}
    consumer = Consumer({**config, "group.id": f"{app_id}-{topology}"})
    try:
        ends = []
        for topic in topology_named(topology, settings).dead_letter_owners():
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            ends += [TopicPartition(topic, p, consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10)[1]) for p in parts]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()
