"""The CMDB's change history in PostgreSQL (``asset_changes``): every ``asset`` and
``dependency`` change, stored once per event id, never updated or deleted; other
capabilities add notes to an asset's history (self-healing: ``remediation``), which
``dharma cmdb show`` lists and no graph state is made of.

It is the CMDB's source of truth: the graph holds, for each asset and edge, the state
its whole history here gives (:meth:`AssetChangeSink.histories`), so late, repeated
and out-of-order events end in the same graph.  Rows are plain values
(:class:`ChangeRow`); the capability decides what they mean.

Event ids are the key, not ``(event_id, ts)``: the table is not partitioned by time
(asset changes are few beside metrics), so a replay can never store an event twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import tuple_row

from dharma.sinks.base import BatchSink

__all__ = ["AssetChangeSink", "ChangeRow", "changes_of", "create_table"]

_DDL = """
CREATE TABLE IF NOT EXISTS asset_changes (
    event_id text PRIMARY KEY,
    ts timestamptz NOT NULL,
    ts_ms bigint NOT NULL,
    kind text NOT NULL,
    key text NOT NULL,
    resource_id text NOT NULL,
    action text NOT NULL,
    attributes jsonb NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS asset_changes_key ON asset_changes (key, ts_ms);
CREATE INDEX IF NOT EXISTS asset_changes_resource ON asset_changes (resource_id, ts_ms)
"""

_INSERT = """
INSERT INTO asset_changes (event_id, ts, ts_ms, kind, key, resource_id, action, attributes)
SELECT e, to_timestamp(t / 1000.0), t, k, ky, r, a, at
FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::jsonb[]) AS c(e, t, k, ky, r, a, at)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

_SELECT_IDS = """
SELECT event_id, ts_ms, kind, key, resource_id, action, attributes FROM asset_changes
WHERE event_id = ANY(%s)"""

_SELECT_KEYS = """
SELECT event_id, ts_ms, kind, key, resource_id, action, attributes FROM asset_changes
WHERE key = ANY(%s) ORDER BY key, ts_ms, event_id"""

_SELECT_KEYS_AFTER = """
SELECT DISTINCT key FROM asset_changes WHERE kind IN ('asset', 'dependency')
AND (%s::text IS NULL OR key > %s) ORDER BY key LIMIT %s"""

_SELECT_RESOURCE = """
SELECT event_id, ts_ms, kind, key, resource_id, action, attributes FROM asset_changes
WHERE resource_id = %(r)s AND (%(until)s::bigint IS NULL OR ts_ms <= %(until)s)
AND (%(ts)s::bigint IS NULL OR (ts_ms, event_id) < (%(ts)s, %(id)s::text))
ORDER BY ts_ms DESC, event_id DESC LIMIT %(n)s"""


class ChangeRow(NamedTuple):
    """One stored change."""

    event_id: str
    ts: int
    kind: str
    key: str
    resource_id: str
    action: str
    attributes: dict[str, Any]


class AssetChangeSink(BatchSink[ChangeRow]):
    """Appends changes to ``asset_changes`` (idempotent on the event id) and reads the
    histories of keys back."""

    def __init__(self, dsn: str, **kwargs: Any) -> None:
        super().__init__(name="postgres.asset_changes", **kwargs)
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection | None = None

    async def setup(self) -> None:
        await self.close()
        self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        await self._conn.execute(_DDL)

    async def write(self, batch: Sequence[ChangeRow]) -> int:
        return len(await self.append(batch))

    async def append(self, batch: Sequence[ChangeRow]) -> set[str]:
        """Store ``batch``; the event ids stored now (not those stored before)."""
        assert self._conn is not None
        cur = await self._conn.execute(_INSERT, (
            [c.event_id for c in batch], [c.ts for c in batch], [c.kind for c in batch],
            [c.key for c in batch], [c.resource_id for c in batch], [c.action for c in batch],
            [json.dumps(c.attributes) for c in batch]))
        return {row[0] for row in await cur.fetchall()}

    async def stored(self, event_ids: Sequence[str]) -> dict[str, ChangeRow]:
        """The stored rows of these event ids (to tell a replay from a reused id)."""
        assert self._conn is not None
        if not event_ids:
            return {}
        cur = await self._conn.execute(_SELECT_IDS, (list(event_ids),))
        return {row[0]: ChangeRow(*row) for row in await cur.fetchall()}

    async def histories(self, keys: Sequence[str]) -> dict[str, list[ChangeRow]]:
        """Every stored change of each of ``keys``, oldest first."""
        assert self._conn is not None
        cur = await self._conn.execute(_SELECT_KEYS, (list(keys),))
        out: dict[str, list[ChangeRow]] = {}
        for row in await cur.fetchall():
            out.setdefault(row[3], []).append(ChangeRow(*row))
        return out

    async def keys_after(self, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` keys with a history, in order, after ``after`` (from the first
        when ``None``): pages of every key, for a rebuild of the graph."""
        assert self._conn is not None
        cur = await self._conn.execute(_SELECT_KEYS_AFTER, (after, after, limit))
        return [row[0] for row in await cur.fetchall()]

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


async def create_table(conn: psycopg.AsyncConnection[Any]) -> None:
    """Create ``asset_changes`` and its indexes if missing."""
    await conn.execute(_DDL)


async def changes_of(conn: psycopg.AsyncConnection[Any], resource_id: str, *,
                     until: int | None = None, limit: int = 20,
                     after: tuple[int, str] | None = None, prepare: bool = True
                     ) -> list[ChangeRow]:
    """The newest changes about ``resource_id`` (its asset and the edges from it), newest
    first; with ``until``, only those at or before it (ms); with ``after``, those after
    that ``(ts, event_id)`` in this order (the next page).  ``prepare``: create the table
    first."""
    if prepare:
        await create_table(conn)
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(_SELECT_RESOURCE, {"r": resource_id, "until": until,
                                         "ts": after[0] if after else None,
                                         "id": after[1] if after else None, "n": limit})
    return [ChangeRow(*row) for row in await cur.fetchall()]
