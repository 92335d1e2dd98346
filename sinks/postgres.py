"""PostgreSQL sink for raw metrics: a time-partitioned table, idempotent writes.

Delivery: at-least-once; a sample is identified by ``(source, metric, ts)``,
so replaying the same events stores each once (``ON CONFLICT DO NOTHING``).
With TimescaleDB the table is a hypertable; without it (the embedded
PostgreSQL) it is natively partitioned by day, for the days of the last
``partition_days``, and samples older than that (a backfill, or a producer
naming every past day to make a table of each) share a default partition.
Queries are the same.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from dharma.sinks.base import BatchSink
from dharma.streams.records import MetricSample

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000

_INSERT = """
INSERT INTO {table} (source, metric, ts, value, labels, unit)
SELECT s, m, to_timestamp(t / 1000.0), v, l, u
FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::float8[], %s::jsonb[], %s::text[])
     AS r(s, m, t, v, l, u)
ON CONFLICT (source, metric, ts) DO NOTHING
"""


_STORED = """
SELECT m.source, m.metric, (extract(epoch FROM m.ts) * 1000)::bigint, m.value
FROM {table} AS m
JOIN unnest(%s::text[], %s::text[], %s::bigint[]) AS k(s, mt, t)
  ON m.source = k.s AND m.metric = k.mt AND m.ts = to_timestamp(k.t / 1000.0)
"""


class PostgresMetricsSink(BatchSink[MetricSample]):
    """Stores validated ``metrics.raw`` samples in ``table``.

    Parameters
    ----------
    dsn:
        libpq connection string.
    table:
        Table name (created if missing).
    partition_days:
        Days before today that get a partition of their own (native partitioning).
    """

    def __init__(self, dsn: str, table: str = "metrics_raw", partition_days: int = 7,
                 **kwargs: Any) -> None:
        super().__init__(name=f"postgres.{table}", **kwargs)
        self._dsn = dsn
        self.table = table
        self.partition_days = partition_days
        self.timescale = False
        self._conn: psycopg.AsyncConnection | None = None
        self._days: set[int] = set()

    async def setup(self) -> None:
        await self.close()
        self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        self.timescale = await create_metrics_table(self._conn, self.table)
        self._days.clear()

    async def write(self, batch: Sequence[MetricSample]) -> int:
        assert self._conn is not None
        if not self.timescale:
            oldest = int(time.time() * 1000) // DAY_MS - self.partition_days
            await self._ensure_partitions({d for s in batch if (d := s.ts // DAY_MS) >= oldest})
        query = sql.SQL(_INSERT).format(table=sql.Identifier(self.table))
        params = (
            [s.source for s in batch], [s.metric for s in batch], [s.ts for s in batch],
            [s.value for s in batch], [json.dumps(s.labels) for s in batch],
            [s.unit for s in batch],
        )
        cur = await self._conn.execute(query, params)
        return max(cur.rowcount, 0)

    async def conflicting(self, batch: Sequence[MetricSample]) -> list[tuple[int, float]]:
        """Samples of ``batch`` whose key ``(source, metric, ts)`` is stored with another
        value: ``(index in batch, stored value)``.  A replay stores nothing and differs in
        nothing; one of these is not a replay (a collector racing a forger, a producer
        bug), and must not pass silently as one."""
        assert self._conn is not None
        query = sql.SQL(_STORED).format(table=sql.Identifier(self.table))
        cur = await self._conn.execute(query, (
            [s.source for s in batch], [s.metric for s in batch], [s.ts for s in batch]))
        stored = {(src, met, ts): value for src, met, ts, value in await cur.fetchall()}
        out = []
        for i, s in enumerate(batch):
            value = stored.get((s.source, s.metric, s.ts))
            if value is not None and value != s.value:
                out.append((i, value))
        return out

    async def _ensure_partitions(self, days: set[int]) -> None:
        assert self._conn is not None
        for day in sorted(days - self._days):
            await create_day_partition(self._conn, self.table, day)
            self._days.add(day)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


async def create_metrics_table(conn: psycopg.AsyncConnection, table: str) -> bool:
    """Create the metrics table if missing; True when it is a TimescaleDB hypertable."""
    found = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    timescale = await found.fetchone() is not None
    columns = sql.SQL("""(
        source text NOT NULL,
        metric text NOT NULL,
        ts timestamptz NOT NULL,
        value double precision NOT NULL,
        labels jsonb NOT NULL DEFAULT '{}',
        unit text,
        ingested_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source, metric, ts))""")
    ident = sql.Identifier(table)
    if timescale:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        await conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ").format(ident) + columns)
        await conn.execute("SELECT create_hypertable(%s, 'ts', if_not_exists => TRUE)", (table,))
    else:
        await conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ").format(ident) + columns
            + sql.SQL(" PARTITION BY RANGE (ts)"))
        await conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} DEFAULT").format(
            sql.Identifier(f"{table}_default"), ident))
    return timescale


async def create_day_partition(conn: psycopg.AsyncConnection, table: str, day: int) -> None:
    """Create the native partition holding epoch-day ``day`` (idempotent, race-safe)."""
    start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)
    name = f"{table}_p{start:%Y%m%d}"
    stmt = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {part} PARTITION OF {table} FOR VALUES FROM ({lo}) TO ({hi})"
    ).format(part=sql.Identifier(name), table=sql.Identifier(table),
             lo=sql.Literal(start), hi=sql.Literal(start + timedelta(days=1)))
    try:
        await conn.execute(stmt)
    except psycopg.errors.DuplicateTable:
        logger.debug("partition %s created concurrently", name)
