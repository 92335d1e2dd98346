"""Session fixtures: the real embedded stack on free loopback ports, and helpers.

The stack (Tansu broker, registry, PostgreSQL, FalkorDB) starts once per test
process under a temporary state directory, on ports nobody else uses, so a
developer's running ``make run`` is never touched.  pytest-xdist runs several
test processes (``addopts`` in ``pyproject.toml``), each with a stack of its own:
nothing a test writes to a topic, table or consumer group is seen by another
process.  Tests poll for conditions with deadlines; none sleeps and hopes.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from hypothesis import settings as hypothesis_settings
from workers import WorkerProcess, start_at_end, stop_all

from dharma.infra.stack.ephemeral import ephemeral_stack, free_port

DEADLINE_S = 60.0

# CI replays the same examples every run (no flakes from a new random search, no
# deadline on a loaded 2-core machine); developers' runs keep exploring.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def poll_until(check: Callable[[], Any], what: str, timeout: float = DEADLINE_S,
               describe: Callable[[], str] | None = None) -> Any:
    """Return ``check()``'s first truthy result; fail after ``timeout`` seconds
    (with ``describe()`` in the message when given)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # not ready yet: poll again
            last = exc
        time.sleep(0.1)
    detail = describe() if describe is not None else f"last: {last!r}"
    raise AssertionError(f"{what}: not true after {timeout}s ({detail})")


@pytest.fixture(scope="session")
def poll() -> Callable[..., Any]:
    return poll_until


def _json_or_none(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:  # not JSON (a hostile record): names nothing, holds nothing
        return None


def _read_changelog(settings: Any, topic: str, key: str) -> dict[str, Any] | None:
    """The newest value of ``key`` in a table changelog (read with ``assign``: no group join)."""
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    parts = consumer.list_topics(topic, timeout=5).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    found, deadline = None, time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(500, 0.5)
            if not batch and found is not None:
                break
            for msg in batch:
                if not msg.error() and _json_or_none(msg.key()) == key:
                    found = _json_or_none(msg.value())
    finally:
        consumer.close()
    return found


@pytest.fixture(scope="session")
def read_changelog() -> Callable[[Any, str, str], dict[str, Any] | None]:
    """Reader of a table changelog's newest value for a key."""
    return _read_changelog


@pytest.fixture(scope="session")
def pick_port() -> Callable[[], int]:
    """Factory of free loopback ports (below the ephemeral range)."""
    return free_port


@contextmanager
def _one_stack_starting_at_a_time(lock_dir: Path | None) -> Iterator[None]:
    """Hold the run's stack start-up lock (in ``lock_dir``; none when ``None``).

    A stack picks its ports free and binds them while it starts: two test processes
    starting stacks at once could pick the same port, so under pytest-xdist they take
    turns until every server of theirs listens.
    """
    if lock_dir is None:
        yield
        return
    with (lock_dir / "stack-start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


@pytest.fixture(scope="session")
def stack_env(worker_id: str, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[dict[str, str]]:
    """Start the embedded stack for this test process; yield the env pointing at it."""
    # under xdist each process's base temp is a folder of the run's own
    run_dir = tmp_path_factory.getbasetemp().parent if worker_id != "master" else None
    with ExitStack() as running:
        with _one_stack_starting_at_a_time(run_dir):
            _, env = running.enter_context(ephemeral_stack(prefix="dharma-test-"))
        yield env


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Any:
    from dharma.streams.settings import Settings

    return Settings()


#: Settings that point a worker at a broker other than the session's.
_OTHER_BROKER = ("DHARMA_STACK_KAFKA_PORT", "DHARMA_KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture
def start_worker(
    settings: Any, stack_env: dict[str, str], tmp_path: Path,
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start workers (one consumer group per test, starting at the end of the
    topics it consumes: :func:`start_at_end`); stopped afterwards.  A second start of the
    same topology and app id is a restart: it resumes from the group's offsets."""
    workers: list[WorkerProcess] = []
    group = f"t{uuid.uuid4().hex[:8]}"
    positioned: set[tuple[str, str]] = set()

    def start(topology: str, **extra_env: str) -> WorkerProcess:
        env = {**stack_env, "DHARMA_WORKER_APP_ID": group, **extra_env}
        app_id = env["DHARMA_WORKER_APP_ID"]
        if (topology, app_id) not in positioned and not set(_OTHER_BROKER) & set(extra_env):
            start_at_end(settings, topology, app_id)
        positioned.add((topology, app_id))
        worker = WorkerProcess(topology, env, tmp_path / f"worker-{len(workers)}.log").start()
        workers.append(worker)
        return worker

    yield start
    stop_all(workers)
    for worker in workers:  # shown by pytest only when the test failed
        print(f"--- {worker.topology} worker log (tail) ---\n{worker.output()[-6000:]}")
