"""Run the registry until SIGTERM/SIGINT: open the store, serve, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from dharma.infra.registry.app import build_app
from dharma.infra.registry.store import RegistryStore

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def serve(
    host: str,
    port: int,
    dsn: str,
    stop: asyncio.Event | None = None,
    access_log: bool = False,
    handle_signals: bool = True,
) -> None:
    """Serve on ``host:port`` until ``stop`` is set (or SIGTERM/SIGINT, in the main thread)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in SIGNALS:
            loop.add_signal_handler(sig, stop.set)
    try:
        store = await _open_store(dsn, stop)
        if store is not None:
            await _serve_store(store, host, port, stop, access_log)
    finally:
        if handle_signals:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
    log.info("registry stopped")


async def _open_store(dsn: str, stop: asyncio.Event) -> RegistryStore | None:
    """Open the store, giving up if asked to stop while PostgreSQL is not there yet."""
    opening = asyncio.ensure_future(RegistryStore.open(dsn))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if opening.done():
        return opening.result()
    opening.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await opening
    log.info("registry stopped before PostgreSQL was reachable")
    return None


async def _serve_store(
    store: RegistryStore, host: str, port: int, stop: asyncio.Event, access_log: bool
) -> None:
    access = logging.getLogger("aiohttp.access") if access_log else None
    runner = web.AppRunner(build_app(store), access_log=access)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("registry listening host=%s port=%s", host, port)
        await stop.wait()
        log.info("registry stopping")
    finally:
        await runner.cleanup()
        await store.close()
