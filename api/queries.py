"""What the read endpoints over the stores share: the process's store connections,
pages with opaque keyset cursors, time filters, and a store that is away as a 503.

A cursor is the sort key of the last row of a page, signed (HMAC-SHA256, a key of the
process) together with the route and its filters: a cursor that was altered, forged,
or taken to another query is a 400, and paging can never escape the query's filters.
Cursors are valid for the process that issued them (a restarted API answers 400: start
again from the first page).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import psycopg
from cachetools import TTLCache
from fastapi import Depends, HTTPException, Query, Request
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from dharma.api.context import ApiContext, context_of
from dharma.sinks.base import STORE_ERRORS
from dharma.sinks.graph import Graph, connect

__all__ = [
    "NAME_PATTERN",
    "TIME_HELP",
    "TIME_PATTERN",
    "Cursors",
    "Name",
    "Page",
    "Stores",
    "StoresDep",
    "Time",
    "answer_503",
    "epoch_ms",
    "paged",
    "stores",
]

#: ``since``/``until``: epoch milliseconds, or ISO 8601 with a zone (``Z`` or ``±HH:MM``).
TIME_PATTERN = (r"^(\d{1,15}|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
                r"(Z|[+-]\d{2}:?\d{2}))$")
TIME_HELP = "Epoch milliseconds, or ISO 8601 with a zone (2026-12-01T18:00:00Z)."
#: A time filter's parameter.
Time = Annotated[str | None, Query(pattern=TIME_PATTERN, max_length=40, description=TIME_HELP)]
#: What an id or name may hold (users, resources, teams, assets: no wildcards).
NAME_PATTERN = r"^[\w.:@/*-]{1,200}$"
#: An id or name filter's parameter.
Name = Annotated[str | None, Query(pattern=NAME_PATTERN)]
#: The last epoch ms a time filter may name (9999-12-31T23:59:59.999Z).
MAX_EPOCH_MS = 253_402_300_799_999
#: Longest wait for a PostgreSQL connection before answering 503.
CONNECT_TIMEOUT_S = 5.0
_MAC_BYTES = 16


def epoch_ms(text: str | None, name: str) -> int | None:
    """Epoch ms of a time filter (already matched against :data:`TIME_PATTERN`).

    >>> epoch_ms("1796148000000", "since"), epoch_ms("2026-12-01T19:00:00+01:00", "since")
    (1796148000000, 1796148000000)
    """
    if text is None:
        return None
    try:
        ms = int(text) if text.isdigit() else int(datetime.fromisoformat(text).timestamp() * 1000)
    except (ValueError, OverflowError):
        ms = -1
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise HTTPException(422, f"{name}: {text!r} is not a time from 1970 to 9999 "
                                 f"({TIME_HELP})")
    return ms


class Cursors:
    """Signs and checks page cursors (see the module docstring)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _mac(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self._key, scope.encode() + b"\0" + payload,
                        hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, scope: str, key: Sequence[str | int | float]) -> str:
        """The cursor after the row whose sort key is ``key``, for query ``scope``.

        >>> c = Cursors(b"k" * 32)
        >>> c.decode("q", c.encode("q", [1, "a"]))
        [1, 'a']
        """
        payload = json.dumps(list(key), separators=(",", ":")).encode()
        raw = self._mac(scope, payload) + payload
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, scope: str, cursor: str) -> list[Any]:
        """The sort key in ``cursor``; a 400 when it is not one this process issued for
        ``scope``."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        if len(mac) < _MAC_BYTES or not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise HTTPException(400, "invalid cursor: not one this API issued for this query "
                                     "(start again without a cursor)")
        key: list[Any] = json.loads(payload)
        return key


class Stores:
    """The stores one API process reads: a PostgreSQL pool (the sinks' tables made sure
    of once), the CMDB graph client, the cursor key.  Closed with the app."""

    def __init__(self, context: ApiContext) -> None:
        settings = context.settings
        self.settings = settings
        self.cursors = Cursors()
        self._pool = AsyncConnectionPool(
            settings.postgres.dsn.get_secret_value(), min_size=1, max_size=4, open=False,
            timeout=CONNECT_TIMEOUT_S, check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": 5})
        self._prepared: set[str] = set()
        self._lock = asyncio.Lock()
        self._graph: Graph | None = None
        self._caches: dict[str, TTLCache[Any, Any]] = {}

    def postgres(self, tables: str,
                 prepare: Callable[[psycopg.AsyncConnection[Any]], Any] | None = None,
                 rows: Any = tuple_row) -> _Borrowed:
        """A pooled connection (``async with``) returning ``rows`` (a psycopg row factory),
        after ``prepare(conn)`` created the tables named ``tables`` (once per process: the
        sink's own idempotent DDL)."""
        return _Borrowed(self, tables, prepare, rows)

    def cache(self, name: str, ttl_s: float, size: int = 256) -> TTLCache[Any, Any]:
        """The process's cache ``name`` of answers kept ``ttl_s`` (at most ``size``)."""
        if name not in self._caches:
            self._caches[name] = TTLCache(maxsize=size, ttl=ttl_s)
        return self._caches[name]

    def graph(self) -> Graph:
        """The CMDB graph client (FalkorDB's protocol, or Bolt in a thread)."""
        if self._graph is None:
            graph = self.settings.graph
            auth = ((graph.user, graph.password.get_secret_value())
                    if graph.user and graph.password else None)
            self._graph = connect(graph.uri, auth)
        return self._graph

    async def close(self) -> None:
        await self._pool.close()
        if self._graph is not None:
            await self._graph.close()


class _Borrowed:
    """``async with stores.postgres(...) as conn``."""

    def __init__(self, stores: Stores, tables: str,
                 prepare: Callable[[psycopg.AsyncConnection[Any]], Any] | None,
                 rows: Any) -> None:
        self._stores, self._tables, self._prepare = stores, tables, prepare
        self._rows = rows
        self._borrowed: Any = None

    async def __aenter__(self) -> psycopg.AsyncConnection[Any]:
        stores = self._stores
        await stores._pool.open(wait=False)
        self._borrowed = stores._pool.connection()
        conn: psycopg.AsyncConnection[Any] = await self._borrowed.__aenter__()
        conn.row_factory = self._rows
        if self._prepare is not None and self._tables not in stores._prepared:
            async with stores._lock:  # concurrent CREATE ... IF NOT EXISTS can collide
                if self._tables not in stores._prepared:
                    await self._prepare(conn)
                    stores._prepared.add(self._tables)
        return conn

    async def __aexit__(self, *exc: Any) -> None:
        await self._borrowed.__aexit__(*exc)


def stores(context: Annotated[ApiContext, Depends(context_of)]) -> Stores:
    """The process's :class:`Stores` (a FastAPI dependency; made on first use)."""
    found = context.resources.get("stores")
    if found is None:
        found = context.resources["stores"] = Stores(context)
    assert isinstance(found, Stores)
    return found


#: What a store that is away raises (the pool's timeout included).
_UNAVAILABLE: tuple[type[BaseException], ...] = (PoolTimeout, *STORE_ERRORS)

#: A route's parameter: the process's :class:`Stores`.
StoresDep = Annotated[Stores, Depends(stores)]


async def answer_503() -> AsyncIterator[None]:
    """A router dependency: a store that is away (refused, timed out, broken) is a 503
    with the reason, never a 500."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise HTTPException(503, f"store unavailable: {type(exc).__name__}: {exc}"[:500],
                            headers={"Retry-After": "5"}) from exc


@dataclass(frozen=True)
class Page:
    """A page request: its size and, past the first page, the sort key to continue after."""

    limit: int
    after: list[Any] | None
    scope: str
    cursors: Cursors

    def result(self, rows: Sequence[Any], key: Callable[[Any], Sequence[Any]],
               item: Callable[[Any], Any] = lambda r: r) -> dict[str, Any]:
        """``{"items", "next"}`` from up to ``limit + 1`` rows fetched."""
        shown = list(rows[:self.limit])
        more = len(rows) > self.limit and shown
        return {"items": [item(r) for r in shown],
                "next": self.cursors.encode(self.scope, key(shown[-1])) if more else None}


def paged(*key_types: type) -> Callable[..., Page]:
    """A dependency reading ``limit`` and ``cursor``; the cursor's sort key must have
    ``key_types`` (the route's keyset), and is bound to the path and every other query
    parameter."""

    def dependency(request: Request, store: StoresDep,
                   limit: int = Query(100, ge=1, description="Rows per page (at most "
                                      "DHARMA_API_MAX_PAGE, 500 by default)."),
                   cursor: str | None = Query(None, max_length=1024,
                                              pattern=r"^[A-Za-z0-9_-]+$",
                                              description="The `next` of the page before.")
                   ) -> Page:
        if limit > store.settings.api.max_page:
            raise HTTPException(422, f"limit: at most {store.settings.api.max_page}")
        filters = sorted((k, v) for k, v in request.query_params.multi_items()
                         if k not in ("limit", "cursor"))
        scope = json.dumps([request.url.path, filters])
        after = None if cursor is None else store.cursors.decode(scope, cursor)
        if after is not None and (len(after) != len(key_types) or not all(
                type(v) is t for v, t in zip(after, key_types, strict=False))):
            raise HTTPException(400, "invalid cursor")
        return Page(limit, after, scope, store.cursors)

    return dependency

