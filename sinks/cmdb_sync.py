"""Reconciliation of the CMDB with a discovery tool's inventory, Cartography-style:
the graph side (:class:`GraphSync`) and the record of syncs in PostgreSQL
(:class:`SyncLog`, table ``cmdb_syncs``).

Each sync has a tag (ms, increasing per source).  Every asset it saw gets
``source``, ``sync_tag`` and ``stale = false``; after a *complete* sync, the live
assets of the same source with an older tag get ``stale = true`` and
``stale_since`` (never deleted: a later sync that sees one again clears it).  A tag
never goes back: an older sync finishing late neither re-tags nor un-stales what a
newer one decided.  The asset attributes themselves travel as ``infrastructure.events``
through the CMDB worker, like any change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal, NamedTuple

import psycopg

from dharma.sinks.graph import Graph

__all__ = ["GraphSync", "SyncLog", "SyncRecord", "SyncStatus"]

#: Ids per graph query.
PAGE = 2000

SyncStatus = Literal["running", "complete", "failed"]

_DDL = """
CREATE TABLE IF NOT EXISTS cmdb_syncs (
    source text NOT NULL,
    tag bigint NOT NULL,
    rows integer NOT NULL,
    partial boolean NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
    stale_marked integer NOT NULL DEFAULT 0,
    error text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (source, tag)
)"""

# One tag at a time per source (transaction-scoped lock), each above the last.
_BEGIN = """
INSERT INTO cmdb_syncs (source, tag, rows, partial, status)
SELECT %(source)s, greatest(%(now)s, coalesce(max(tag) + 1, 0)), %(rows)s, %(partial)s,
       'running'
FROM cmdb_syncs WHERE source = %(source)s
RETURNING tag"""

_LIVE = ("UNWIND $ids AS id MATCH (a:Asset {id: id}) "
         "WHERE a.valid_to IS NULL AND NOT coalesce(a.placeholder, false) RETURN a.id AS id")

# A node the worker has not described yet is a placeholder until its event lands; a
# sync older than the node's tag, or than the sync that found it stale, leaves it be.
_SEEN = ("UNWIND $ids AS id MERGE (a:Asset {id: id}) "
         "ON CREATE SET a.placeholder = true, a.status = 'placeholder' "
         "WITH a WHERE (a.sync_tag IS NULL OR a.sync_tag <= $tag) "
         "AND coalesce(a.stale_since, -1) <= $tag "
         "SET a.source = $source, a.sync_tag = $tag, a.stale = false, a.stale_since = null "
         "RETURN count(a) AS n")

_STALE = ("MATCH (a:Asset) WHERE a.source = $source AND a.sync_tag < $tag "
          "AND NOT coalesce(a.stale, false) AND coalesce(a.status, '') <> 'retired' "
          "SET a.stale = true, a.stale_since = $tag RETURN count(a) AS n")


class SyncRecord(NamedTuple):
    """One sync as ``cmdb_syncs`` keeps it."""

    source: str
    tag: int
    rows: int
    partial: bool
    status: str
    stale_marked: int
    error: str | None


class SyncLog:
    """The record of syncs in PostgreSQL (synchronous: the CLI writes it)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.dsn, autocommit=True)
        conn.execute(_DDL)
        return conn

    def begin(self, source: str, rows: int, partial: bool) -> int:
        """Record a running sync of ``source``; its tag (now in ms, or above the last)."""
        with self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                         (f"cmdb_syncs:{source}",))
            row = conn.execute(_BEGIN, {"source": source, "now": int(time.time() * 1000),
                                        "rows": rows, "partial": partial}).fetchone()
        assert row is not None
        return int(row[0])

    def finish(self, source: str, tag: int, status: SyncStatus, stale_marked: int = 0,
               error: str | None = None) -> None:
        with self._connect() as conn:
            conn.execute("UPDATE cmdb_syncs SET status = %s, stale_marked = %s, error = %s, "
                         "finished_at = now() WHERE source = %s AND tag = %s",
                         (status, stale_marked, error, source, tag))

    def recent(self, source: str | None = None, limit: int = 20) -> list[SyncRecord]:
        """The newest syncs (of ``source``, or of all), newest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT source, tag, rows, partial, status, stale_marked, error FROM cmdb_syncs"
                " WHERE %(source)s::text IS NULL OR source = %(source)s"
                " ORDER BY started_at DESC, tag DESC LIMIT %(limit)s",
                {"source": source, "limit": limit}).fetchall()
        return [SyncRecord(*row) for row in rows]


def _pages(ids: Sequence[str]) -> list[list[str]]:
    return [list(ids[i:i + PAGE]) for i in range(0, len(ids), PAGE)]


class GraphSync:
    """The graph side of a sync: which assets are live, seen and stale."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    async def setup(self) -> None:
        """The index on ``Asset.id`` (a sync may come before any worker made it): without
        it every ``MERGE`` of a page scans the graph."""
        await self.graph.ensure_index()

    async def live(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` with a live, described node."""
        found: set[str] = set()
        for page in _pages(ids):
            found |= {r["id"] for r in await self.graph.query(_LIVE, ids=page)}
        return found

    async def mark_seen(self, source: str, tag: int, ids: Sequence[str]) -> int:
        """Tag the assets ``ids`` as seen by ``source`` now (created as placeholders when
        absent); how many took the tag (a newer sync's tag is kept)."""
        marked = 0
        for page in _pages(ids):
            rows = await self.graph.query(_SEEN, ids=page, source=source, tag=tag)
            marked += int(rows[0]["n"]) if rows else 0
        return marked

    async def mark_stale(self, source: str, tag: int) -> int:
        """Mark stale the live assets of ``source`` that sync ``tag`` did not see (call
        only after a complete sync); how many."""
        rows = await self.graph.query(_STALE, source=source, tag=tag)
        return int(rows[0]["n"]) if rows else 0
