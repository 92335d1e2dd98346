"""A worker whose broker has gone away still stops on SIGTERM (and leaves no process)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dharma.infra.stack.process import wait_until
from dharma.infra.stack.services import Service, kafka_service
from dharma.streams.admin import create_topics
from dharma.streams.settings import Settings

pytestmark = pytest.mark.integration

STOP_WITHIN_S = 15


@pytest.fixture
def own_broker(tmp_path: Path, pick_port: Callable[[], int],
               monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Service, dict[str, str]]]:
    """A broker of the test's own (the session's must stay up), with the topics."""
    env = {"DHARMA_STACK_KAFKA_PORT": str(pick_port()),
           "DHARMA_STACK_STATE_DIR": str(tmp_path / "broker")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    broker = kafka_service(settings)
    broker.process.start()
    try:
        assert wait_until(broker.healthy, timeout=30), broker.process.log_tail()
        create_topics(settings)
        yield broker, env
    finally:
        broker.process.stop(signal.SIGKILL)


def test_worker_stops_on_sigterm_after_its_broker_is_gone(
        own_broker: tuple[Service, dict[str, str]], start_worker: Callable[..., Any],
        poll: Callable[..., Any]) -> None:
    broker, env = own_broker
    worker = start_worker("trust", **env)
    poll(lambda: "[^Worker]: Ready" in worker.output(), "the worker to start")
    broker.process.stop(signal.SIGKILL)
    poll(lambda: "Connection refused" in worker.output() or "Unable connect" in worker.output(),
         "the worker to notice the broker is gone")
    worker.proc.send_signal(signal.SIGTERM)
    try:
        worker.proc.wait(STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker still running {STOP_WITHIN_S}s after SIGTERM:\n"
                    + worker.output()[-3000:])
    assert "consumer closed with its fetches cancelled" in worker.output()
