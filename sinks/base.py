"""The sink shape every sink follows (after quixstreams' ``BatchingSink``).

``setup()`` connects and verifies; ``write(batch)`` is the one thing a sink
implements and must be idempotent; :meth:`BatchSink.flush` retries it a bounded
number of times (tenacity) and then raises :class:`SinkUnavailable`, which the
agent turns into dead letters; :meth:`BatchSink.call` gives any other
operation of a sink the same treatment.  Agents await ``flush`` before their
batch is acknowledged, so offsets are committed only after the rows are
stored: at-least-once delivery, with idempotent writes making replays harmless.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import neo4j.exceptions
import psycopg
import redis.exceptions
from tenacity import AsyncRetrying, RetryError, stop_after_attempt, wait_exponential

from dharma.streams.errors import DharmaError

logger = logging.getLogger(__name__)

Row = TypeVar("Row")
T = TypeVar("T")


class SinkUnavailable(DharmaError):
    """A batch could not be written after the bounded retries."""


#: What a store that is away raises: PostgreSQL, the graph (FalkorDB's Redis protocol or
#: Bolt), Redis, or the network under them.
STORE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.Error, redis.exceptions.RedisError, neo4j.exceptions.DriverError,
    neo4j.exceptions.Neo4jError, OSError, TimeoutError)


class BatchSink(ABC, Generic[Row]):
    """A sink writing batches idempotently, with bounded retries.

    Parameters
    ----------
    name:
        Label for metrics and logs.
    attempts:
        Tries per batch before giving up.
    max_backoff_s:
        Longest wait between tries (exponential backoff).
    attempt_timeout_s:
        Longest a try may take (connecting included): a store that stops answering
        without an error fails the try like one that refuses.
    """

    def __init__(self, name: str, attempts: int = 5, max_backoff_s: float = 2.0,
                 attempt_timeout_s: float = 5.0) -> None:
        self.name = name
        self.attempts = attempts
        self.max_backoff_s = max_backoff_s
        self.attempt_timeout_s = attempt_timeout_s
        self._ready = False

    @abstractmethod
    async def setup(self) -> None:
        """Connect, verify, create what is missing."""

    @abstractmethod
    async def write(self, batch: Sequence[Row]) -> int:
        """Write ``batch`` idempotently; the number of rows newly stored."""

    async def close(self) -> None:
        """Release connections."""

    async def ready(self) -> None:
        """Connect (and create what is missing) unless connected already."""
        if not self._ready:
            await self.setup()
            self._ready = True

    def lost(self) -> None:
        """Forget the connection: the next operation connects again."""
        self._ready = False

    async def _attempt(self, op: Callable[[], Awaitable[T]]) -> T:
        try:
            if not self._ready:
                await self.setup()
                self._ready = True
            return await op()
        except Exception:
            self._ready = False  # reconnect on the next try
            raise

    async def call(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op`` (connecting first when needed) with retries; :class:`SinkUnavailable`
        when they run out."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.1, max=self.max_backoff_s),
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    # a store that stops answering (frozen, partitioned) is an outage too
                    return await asyncio.wait_for(self._attempt(op), self.attempt_timeout_s)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            logger.error("sink=%s gave up after %d attempts: %r", self.name, self.attempts, cause)
            raise SinkUnavailable(f"{self.name}: {cause!r}") from cause
        raise AssertionError("unreachable")  # pragma: no cover

    async def flush(self, batch: Sequence[Row]) -> int:
        """Write ``batch`` with retries; :class:`SinkUnavailable` when they run out."""
        if not batch:
            return 0
        return await self.call(lambda: self.write(batch))
