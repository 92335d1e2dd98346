"""The CMDB graph over Bolt: FalkorDB embedded, Neo4j 5 in production, the same Cypher.

Nodes ``(:Asset {id})``; edges ``DEPENDS_ON``, ``RUNS_ON``, ``CONNECTS_TO`` from the
dependant to what it depends on.  Every node and edge carries its lifetime as
``spans`` (``[from, to, ...]`` in ms, ``-1`` while open), ``valid_from``/``valid_to``
(its last span; ``valid_to`` null while live), and ``changed_at``/``changed_by``/
``changes``: the last change applied and how many.  A write never replaces a state
that comes from a longer history (a worker that lost its partitions cannot undo a
newer write), so writes are idempotent and last-writer-wins by event time then id.

The driver is neo4j's *sync* one, run in a thread: its async driver cannot complete
a handshake with FalkorDB's Bolt.  Each thread keeps one session (a query costs
under a millisecond on it, against about 45 ms through ``execute_query``, which opens
a session per call).  FalkorDB's Bolt server (4.16) dies on a request message of
about 4 KiB or more, so list parameters go in chunks whose encoded size stays below
:data:`MAX_MESSAGE_BYTES` (:meth:`BoltGraph.query_chunks`), and a single item larger
than that is refused, never sent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import neo4j

from dharma.sinks import bolt_ack
from dharma.sinks.base import BatchSink
from dharma.streams.errors import DharmaError

__all__ = ["MAX_MESSAGE_BYTES", "RELATIONS", "BoltGraph", "GraphRows", "GraphSink",
           "MessageTooLarge", "encoded_size_bound"]

logger = logging.getLogger(__name__)

#: Relationship types, which Cypher cannot take as parameters: only these are written.
RELATIONS = ("DEPENDS_ON", "RUNS_ON", "CONNECTS_TO")

_ASSET_PROPERTIES = ("asset_type", "name", "provider", "region", "team", "env",
                     "instance_type", "hourly_cost", "status", "spans", "valid_from",
                     "valid_to", "changed_at", "changed_by", "changes")

_VERSION_PROPERTIES = ("spans", "valid_from", "valid_to", "changed_at", "changed_by", "changes")

#: ``row`` comes from a history at least as long as the one ``x``'s state came from.
_NOT_OLDER = ("(x.changes IS NULL OR row.changed_at > x.changed_at OR "
              "(row.changed_at = x.changed_at AND (row.changed_by > x.changed_by OR "
              "(row.changed_by = x.changed_by AND row.changes >= x.changes))))")

#: Largest request (query and parameters, as encoded) sent over Bolt.  FalkorDB 4.16's
#: Bolt server crashes, taking Redis with it, on a request message over its 4 KiB read
#: buffer: from 3,770 bytes of query and parameters on a session (the message's
#: headers and metadata take the rest), so this keeps 700 bytes of margin.
MAX_MESSAGE_BYTES = 3_072


#: Tries of a query whose connection failed.  FalkorDB's Bolt server sometimes leaves
#: a new connection's handshake unanswered after another client closed its own.
_ATTEMPTS = 2


class MessageTooLarge(DharmaError):
    """One item is too large for a Bolt request the graph server survives."""


def _header(size: int) -> int:
    """Bytes of a PackStream string, list or map marker for ``size`` items or bytes."""
    return 1 if size < 16 else 2 if size < 256 else 3 if size < 65_536 else 5


def encoded_size_bound(value: Any) -> int:
    """``value``'s PackStream size in bytes (an upper bound for types it does not know).

    >>> encoded_size_bound({"id": "db-1", "spans": [1700000000000, -1], "cost": None})
    32
    """
    if isinstance(value, str):
        data = len(value.encode())
        return (1 if data < 16 else _header(data)) + data
    if isinstance(value, Mapping):
        return _header(len(value)) + sum(
            encoded_size_bound(k) + encoded_size_bound(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return _header(len(value)) + sum(encoded_size_bound(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return (1 if -16 <= value < 128 else 2 if -128 <= value < 128
                else 3 if -32_768 <= value < 32_768 else 5 if -2**31 <= value < 2**31 else 9)
    return 1 if value is None or isinstance(value, bool) else 9  # a float: marker, 8 bytes


def _chunks(items: Sequence[Any], budget: int) -> Iterator[list[Any]]:
    """``items`` in order, in lists whose encoded size stays within ``budget``."""
    chunk: list[Any] = []
    size = 0
    for item in items:
        item_size = encoded_size_bound(item)
        if item_size > budget:
            raise MessageTooLarge(f"an item of {item_size} bytes cannot be sent to the graph "
                                  f"(at most {budget}): {str(item)[:80]}...")
        if chunk and size + item_size > budget:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


_PLACEHOLDER = "ON CREATE SET {v}.placeholder = true, {v}.status = 'placeholder'"


def _set(var: str, properties: Sequence[str]) -> str:
    return ", ".join(f"{var}.{p} = row.{p}" for p in properties)


_WRITE_ASSETS = (
    "UNWIND $rows AS row MERGE (x:Asset {id: row.id}) "
    f"WITH x, row WHERE {_NOT_OLDER} "
    f"SET x.placeholder = false, {_set('x', _ASSET_PROPERTIES)}")


def _write_edges(relation: str) -> str:
    if relation not in RELATIONS:
        raise ValueError(f"not a CMDB relation: {relation!r}")
    return (
        "UNWIND $rows AS row "
        f"MERGE (s:Asset {{id: row.source}}) {_PLACEHOLDER.format(v='s')} "
        f"MERGE (t:Asset {{id: row.target}}) {_PLACEHOLDER.format(v='t')} "
        f"MERGE (s)-[x:{relation}]->(t) "
        f"WITH x, row WHERE {_NOT_OLDER} SET {_set('x', _VERSION_PROPERTIES)}")


class BoltGraph:
    """A Bolt connection whose queries run in a worker thread (one at a time)."""

    def __init__(self, uri: str, auth: tuple[str, str] | None = None,
                 timeout_s: float = 5.0) -> None:
        self.uri, self._auth, self._timeout_s = uri, auth, timeout_s
        self._driver: neo4j.Driver | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="bolt")
        self._local = threading.local()  # one session per thread: sessions are not shared

    def _connect(self) -> neo4j.Driver:
        if self._driver is None:
            bolt_ack.install()
            self._driver = neo4j.GraphDatabase.driver(
                self.uri, auth=self._auth, connection_timeout=self._timeout_s,
                connection_acquisition_timeout=self._timeout_s)
        return self._driver

    def _session(self) -> neo4j.Session:
        session: neo4j.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._connect().session()
        return session

    def query_sync(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run ``cypher`` now, in the calling thread, in a transaction of its own; its
        records as dicts."""
        size = encoded_size_bound(cypher) + encoded_size_bound(params)
        if size > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(f"a request of {size} bytes cannot be sent to the graph "
                                  f"(at most {MAX_MESSAGE_BYTES})")
        for attempt in range(_ATTEMPTS):
            try:
                return [record.data() for record in self._session().run(cypher, params)]
            except neo4j.exceptions.ServiceUnavailable:
                self._drop_session()  # again on a fresh connection: every query is idempotent
                if attempt == _ATTEMPTS - 1:
                    raise
            except Exception:
                self._drop_session()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def query_chunks_sync(self, cypher: str, name: str, items: Sequence[Any],
                          **params: Any) -> list[dict[str, Any]]:
        """Run ``cypher`` once per chunk of ``items`` (parameter ``name``), each request
        below :data:`MAX_MESSAGE_BYTES`; all the records."""
        budget = MAX_MESSAGE_BYTES - encoded_size_bound(cypher) - encoded_size_bound(params)
        return [record for chunk in _chunks(items, budget - 32)  # the parameter's own name
                for record in self.query_sync(cypher, **params, **{name: chunk})]

    async def query_chunks(self, cypher: str, name: str, items: Sequence[Any],
                           **params: Any) -> list[dict[str, Any]]:
        """:meth:`query_chunks_sync` in the graph's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, lambda: self.query_chunks_sync(cypher, name, items, **params))

    def _drop_session(self) -> None:
        session = getattr(self._local, "session", None)
        self._local.session = None
        if session is not None:
            try:
                session.close()
            except Exception as exc:  # a session on a dead connection may fail to close
                logger.debug("graph session not closed cleanly: %r", exc)

    async def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run ``cypher`` in the graph's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: self.query_sync(cypher, **params))

    def ensure_index_sync(self) -> None:
        """Index (FalkorDB) or uniqueness constraint (Neo4j) on ``Asset.id``: without it
        every ``MERGE`` scans the graph, and concurrent ``MERGE``s on Neo4j could
        create an asset twice."""
        try:
            self.query_sync("CREATE CONSTRAINT asset_id IF NOT EXISTS "
                            "FOR (a:Asset) REQUIRE a.id IS UNIQUE")
            return
        except neo4j.exceptions.Neo4jError:
            pass  # FalkorDB: no Cypher constraints; an index, created once
        indexes = self.query_sync("CALL db.indexes() YIELD label, properties "
                                  "RETURN label, properties")
        if not any(i["label"] == "Asset" and "id" in i["properties"] for i in indexes):
            self.query_sync("CREATE INDEX FOR (a:Asset) ON (a.id)")

    async def ensure_index(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.ensure_index_sync)

    def close_sync(self) -> None:
        self._drop_session()
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.close_sync)


#: A batch of graph writes: asset rows, and edge rows per relation.
GraphRows = tuple[Sequence[Mapping[str, Any]], Mapping[str, Sequence[Mapping[str, Any]]]]


class GraphSink(BatchSink[GraphRows]):
    """Writes asset and edge states (rows shaped as :mod:`dharma.sinks.graph` says),
    each batch as a few ``UNWIND $rows MERGE`` queries."""

    def __init__(self, graph: BoltGraph, **kwargs: Any) -> None:
        super().__init__(name="graph.cmdb", **kwargs)
        self.graph = graph

    async def setup(self) -> None:
        await self.graph.ensure_index()

    async def write(self, batch: Sequence[GraphRows]) -> int:
        written = 0
        for assets, edges in batch:
            if assets:
                await self.graph.query_chunks(_WRITE_ASSETS, "rows", assets)
                written += len(assets)
            for relation, rows in edges.items():
                if rows:
                    await self.graph.query_chunks(_write_edges(relation), "rows", rows)
                    written += len(rows)
        return written

    async def close(self) -> None:
        await self.graph.close()
