"""Start, stop and inspect the embedded stack (``dharma stack up | down | status``)."""

from __future__ import annotations

import fcntl
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from dharma.infra.stack.broker_load import BrokerLoad, sample
from dharma.infra.stack.process import PortTakenError, StackError, port_is_open, wait_until
from dharma.infra.stack.services import Service, all_services
from dharma.streams.settings import Settings, redact_url

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status`` reports for one service."""

    name: str
    pid: int | None
    port: int
    healthy: bool


class EmbeddedStack:
    """The embedded stack under one state directory; every operation is idempotent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.stack.state_dir.resolve()

    @cached_property
    def services(self) -> list[Service]:
        """Built on first use, so that a missing ``embedded`` extra is a :class:`StackError`
        of the operation (``up``) that needs it."""
        return all_services(self.settings)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down across processes sharing the state directory."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / ".lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def up(self) -> list[str]:
        """Start what is not running, wait until healthy; names of services started."""
        started: list[str] = []
        with self._locked():
            for service in self.services:
                if service.process.pid() is not None:
                    self._await_healthy(service)
                    continue
                self._start(service)
                started.append(service.name)
        return started

    def _start(self, service: Service) -> None:
        for port, setting in service.extra_ports:
            if port_is_open(port):
                raise PortTakenError(
                    f"{service.name}: port {port} on 127.0.0.1 is taken by another process; "
                    f"stop it or set {setting} to a free port"
                )
        service.process.check_port_free()
        service.prepare()
        service.process.start()
        self._await_healthy(service)
        service.after_start()

    def _await_healthy(self, service: Service) -> None:
        def ready() -> bool:
            if service.process.pid() is None:
                raise StackError(
                    f"{service.name} exited during start-up; its log "
                    f"({service.process.log_file}) ends with:\n{service.process.log_tail()}"
                )
            return service.healthy()

        if not wait_until(ready, READY_TIMEOUT_S, interval=0.2):
            raise StackError(
                f"{service.name} did not become healthy within {READY_TIMEOUT_S:.0f}s; "
                f"see {service.process.log_file}"
            )

    def down(self) -> list[str]:
        """Stop every running service, in reverse start order; names of services stopped."""
        stopped: list[str] = []
        with self._locked():
            for service in reversed(self.services):
                # PostgreSQL's "fast" shutdown is SIGINT; the others stop on SIGTERM.
                sig = signal.SIGINT if service.name == "postgres" else signal.SIGTERM
                if service.process.stop(sig):
                    stopped.append(service.name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        """Pid, port and health of every service."""
        result = []
        for service in self.services:
            pid = service.process.pid()
            healthy = False
            if pid is not None:
                try:
                    healthy = service.healthy()
                except Exception:
                    healthy = False
            result.append(ServiceStatus(service.name, pid, service.process.port, healthy))
        return result

    def broker_load(self, window_s: float = 1.0) -> BrokerLoad | None:
        """CPU and memory of the running broker over ``window_s``, and what it holds
        (None when it is not running)."""
        kafka = next(s for s in self.services if s.name == "kafka")
        pid = kafka.process.pid()
        if pid is None:
            return None
        return sample(pid, self.settings.kafka.bootstrap_servers, window_s)

    def endpoints(self) -> dict[str, Any]:
        """Every endpoint clients need, as the settings resolve them, passwords hidden."""
        s = self.settings
        return {
            "kafka_bootstrap": s.kafka.bootstrap_servers,
            "registry_url": s.registry.url,
            "postgres_dsn": redact_url(s.postgres.dsn.get_secret_value()),
            "redis_url": redact_url(s.redis.url.get_secret_value()),
            "graph_uri": redact_url(s.graph.uri),
            "bolt_uri": f"bolt://127.0.0.1:{s.stack.bolt_port}",
            "state_dir": str(self.state_dir),
        }
