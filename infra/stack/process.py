"""Detached server processes tracked by pid files under the stack's state directory."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)


class StackError(RuntimeError):
    """The embedded stack could not be started or stopped."""


class PortTakenError(StackError):
    """A port the stack needs is held by a process the stack did not start."""


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except StackError:
            raise
        except Exception:
            logger.debug("probe failed", exc_info=True)
        time.sleep(interval)
    return False


@dataclass
class ManagedProcess:
    """One server process: started detached, found again through its pid file."""

    name: str
    port: int
    port_setting: str
    state_dir: Path
    argv: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    preexec: Callable[[], None] | None = None

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """Pid of our running process, or None (stale pid files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                return pid
        except psutil.NoSuchProcess:
            pass
        self.pid_file.unlink(missing_ok=True)
        return None

    def check_port_free(self) -> None:
        """Raise :class:`PortTakenError` naming the port and its setting."""
        if port_is_open(self.port):
            raise PortTakenError(
                f"{self.name}: port {self.port} on 127.0.0.1 is taken by another process; "
                f"stop it or set {self.port_setting} to a free port"
            )

    def start(self) -> int:
        """Start the process detached from our session and record its pid."""
        self.check_port_free()
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                preexec_fn=self.preexec,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        logger.info("started name=%s pid=%s port=%s", self.name, proc.pid, self.port)
        return proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> bool:
        """Stop the process (and its children); True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            proc = psutil.Process(pid)
            family = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            self.pid_file.unlink(missing_ok=True)
            return False
        for p in family:
            with suppress(psutil.NoSuchProcess):
                p.send_signal(sig)
        _, alive = psutil.wait_procs(family, timeout=timeout)
        for p in alive:
            with suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        self.pid_file.unlink(missing_ok=True)
        logger.info("stopped name=%s pid=%s", self.name, pid)
        return True

    def log_tail(self, lines: int = 20) -> str:
        """Last lines of the process log, for error messages."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
