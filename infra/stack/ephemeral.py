"""A throwaway embedded stack on free loopback ports (tests and benchmarks).

Its own state directory and ports, so a developer's running stack is never
touched; the environment points every component at it while it runs.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dharma.streams.settings import Settings

SERVICES = ("KAFKA", "REGISTRY", "POSTGRES", "REDIS", "BOLT")


def free_port(low: int = 20_000, high: int = 32_000) -> int:
    """A free loopback port below the ephemeral range (FalkorDB's Bolt port must be
    at most 32767, and ports the kernel hands out to clients are avoided)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port found")


@contextmanager
def ephemeral_stack(prefix: str = "dharma-") -> Iterator[tuple[Settings, dict[str, str]]]:
    """Start a private stack with topics and contracts; yield its settings and env."""
    from dharma.infra.stack.manager import EmbeddedStack
    from dharma.streams.admin import create_topics, register_schemas

    root = Path(tempfile.mkdtemp(prefix=prefix))
    env = {
        "DHARMA_STACK_STATE_DIR": str(root / "stack"),
        "DHARMA_WORKER_DATA_DIR": str(root / "worker"),
        "DHARMA_WORKER_METRICS_PORT": "0",
        # thrown away afterwards: no snapshot forks (suspected where a suite's Redis did not
        # answer for over 30 s after a burst of session writes, when the default rules save)
        "DHARMA_STACK_REDIS_SNAPSHOTS": "false",
        **{f"DHARMA_STACK_{name}_PORT": str(free_port()) for name in SERVICES},
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    stack = EmbeddedStack(Settings())
    try:
        stack.up()
        create_topics(stack.settings)
        register_schemas(stack.settings)
        yield stack.settings, env
    finally:
        stack.down()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)
