"""Live subscribers of ``/api/v1/live`` for ``dharma bench api``, in a process of their own.

The subscribers run in a child process (one asyncio loop, one connection each), so
reading the streams takes nothing from the bench's own process, which produces
the load.  Each counts the events of each kind it receives (``event: <kind>``
lines, counted in the raw bytes) and when it received the first and the last.

>>> counts: Counter[str] = Counter()
>>> tail = count_events(b"event: alert\\r\\nid: a:0:1\\r\\ndata: {}\\r\\n\\r\\nevent: pred", b"",
...                     counts)
>>> tail = count_events(b"iction\\ndata: {}\\n\\n", tail, counts)
>>> dict(counts)["alert"], dict(counts)["prediction"]
(1, 1)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

import httpx

__all__ = ["KINDS", "Subscribers", "count_events"]

KINDS = ("alert", "incident", "remediation", "decision", "prediction")
_MARKERS = {kind: f"event: {kind}".encode() for kind in KINDS}
_TAIL = max(map(len, _MARKERS.values())) - 1


def count_events(chunk: bytes, tail: bytes, counts: Counter[str]) -> bytes:
    """Add the events that begin in ``tail + chunk`` to ``counts``; the new tail (bytes
    that may begin a marker cut by the chunk's end, too short to hold a whole one)."""
    data = tail + chunk
    for kind, marker in _MARKERS.items():
        counts[kind] += data.count(marker)
    return data[-_TAIL:]


@dataclass
class Subscriber:
    """What one subscriber saw: its HTTP status, events per kind, first and last event
    (wall clock, s)."""

    status: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    first: float = 0.0
    last: float = 0.0
    error: str = ""


async def _subscribe(client: httpx.AsyncClient, path: str, token: str, seen: Subscriber,
                     connected: asyncio.Queue[int], progress: Synchronized) -> None:
    tail = b""
    try:
        async with client.stream("GET", path,
                                 headers={"authorization": f"Bearer {token}"}) as response:
            seen.status = response.status_code
            await connected.put(response.status_code)
            async for chunk in response.aiter_raw():
                before = sum(seen.counts.values())
                tail = count_events(chunk, tail, seen.counts)
                if (added := sum(seen.counts.values()) - before):
                    seen.last = time.time()
                    seen.first = seen.first or seen.last
                    with progress.get_lock():
                        progress.value += added
    except (httpx.HTTPError, asyncio.CancelledError) as exc:
        seen.error = seen.error or type(exc).__name__
        if not seen.status:
            await connected.put(0)


async def _run(base_url: str, path: str, token: str, n: int, ready: Event, stop: Event,
               progress: Synchronized, out: Any) -> None:
    seen = [Subscriber() for _ in range(n)]
    connected: asyncio.Queue[int] = asyncio.Queue()
    limits = httpx.Limits(max_connections=n + 1, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits,
                                 timeout=httpx.Timeout(30, read=None)) as client:
        tasks = [asyncio.create_task(_subscribe(client, path, token, s, connected, progress))
                 for s in seen]
        for _ in range(n):
            await connected.get()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out.put([{**asdict(s), "counts": dict(s.counts)} for s in seen])  # asdict breaks Counters


def _main(base_url: str, path: str, token: str, n: int, ready: Event, stop: Event,
          progress: Synchronized, out: Any) -> None:
    asyncio.run(_run(base_url, path, token, n, ready, stop, progress, out))


class Subscribers:
    """``n`` subscribers of ``path`` in a child process: ``start()`` returns once every
    one has its response (or failed), ``stop()`` returns what each saw."""

    def __init__(self, base_url: str, path: str, token: str, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self.progress = ctx.Value("q", 0)
        self._out = ctx.Queue()
        self._proc: SpawnProcess = ctx.Process(
            target=_main, args=(base_url, path, token, n, self._ready, self._stop,
                                self.progress, self._out), daemon=True)

    def start(self, timeout_s: float = 60.0) -> Subscribers:
        self._proc.start()
        if not self._ready.wait(timeout_s):
            self._proc.kill()
            raise RuntimeError("the live subscribers did not connect")
        return self

    @property
    def pid(self) -> int:
        """The subscribers' process (started)."""
        assert self._proc.pid is not None
        return self._proc.pid

    def received(self) -> int:
        """Events received so far, by all subscribers together."""
        return int(self.progress.value)

    def stop(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        self._stop.set()
        try:
            seen: list[dict[str, Any]] = self._out.get(timeout=timeout_s)
        finally:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
        return seen
