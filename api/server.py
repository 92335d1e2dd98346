"""Serving the API with uvicorn, in the foreground or on a thread (tests, ``dharma up``)."""

from __future__ import annotations

import threading
import time

import uvicorn

from dharma.api.app import create_app
from dharma.streams.settings import Settings

__all__ = ["ApiServer"]

#: Seconds requests get to finish when the server stops (live streams are then closed).
SHUTDOWN_GRACE_S = 5


class ApiServer:
    """The API on ``host:port``; ``start()`` serves on a daemon thread, ``run()`` here."""

    def __init__(self, settings: Settings, host: str | None = None,
                 port: int | None = None) -> None:
        config = uvicorn.Config(
            create_app(settings), host=host or settings.api.host,
            port=settings.api.port if port is None else port,
            log_level="warning", access_log=False, lifespan="on",
            # live streams never finish by themselves: end them after this long
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, once serving."""
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def run(self) -> None:
        """Serve until interrupted."""
        self._server.run()

    def start(self, timeout: float = 30.0) -> ApiServer:
        """Serve on a daemon thread; return once it accepts connections."""
        self._thread = threading.Thread(target=self._server.run, name="dharma-api",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the server to finish its requests and stop; wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
