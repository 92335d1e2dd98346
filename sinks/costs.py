"""Cost rows in PostgreSQL, with FOCUS column names, and hourly utilisation.

``cost_rows`` holds the estimated cost of each asset per tumbling UTC window (hour,
day, month): one row per ``("ResourceId", x_granularity, "ChargePeriodStart")``,
written idempotently (the same window costed again is the same row).  A row that
changes is a revision (``x_revision`` + 1); an *hour* row changes only when a late
or out-of-order lifecycle event corrected it, and each such correction is also
appended to ``cost_corrections`` with its previous value.  Under TimescaleDB the
table is a hypertable, otherwise natively partitioned by month (with a default
partition for anything else).  Costs across assets (by team, env, provider, region,
service) are sums over the asset rows: the stream is partitioned by asset.

``cost_usage`` keeps the hourly maximum of each utilisation metric per asset: a
maximum is idempotent, so a replayed sample changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dharma.sinks.base import BatchSink
from dharma.streams.records import month_start, next_month

__all__ = ["GROUPINGS", "Correction", "CostRow", "CostStore", "UsageRow", "connect_store"]

#: What ``spend`` can group by, and the column that holds it.
GROUPINGS: dict[str, str] = {
    "asset": "ResourceId", "team": "x_team", "env": "x_env", "provider": "ProviderName",
    "region": "RegionId", "service": "ServiceName",
}

Grouping = Literal["asset", "team", "env", "provider", "region", "service"]

_DDL = """
CREATE TABLE IF NOT EXISTS cost_rows (
    "ResourceId" text NOT NULL,
    "ResourceName" text NOT NULL,
    "ResourceType" text NOT NULL,
    "ChargePeriodStart" timestamptz NOT NULL,
    "ChargePeriodEnd" timestamptz NOT NULL,
    x_granularity text NOT NULL CHECK (x_granularity IN ('hour', 'day', 'month')),
    "ListCost" numeric,
    "EffectiveCost" numeric,
    "BilledCost" numeric,
    "BillingCurrency" text NOT NULL,
    "ServiceName" text NOT NULL,
    "RegionId" text NOT NULL,
    "ProviderName" text NOT NULL,
    x_team text NOT NULL,
    x_env text NOT NULL,
    x_instance_type text,
    x_hourly_cost double precision,
    x_unpriced_hours double precision NOT NULL DEFAULT 0,
    x_revision int NOT NULL DEFAULT 1,
    x_updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("ResourceId", x_granularity, "ChargePeriodStart")
){partitioned};
CREATE INDEX IF NOT EXISTS cost_rows_period ON cost_rows (x_granularity, "ChargePeriodStart");
CREATE TABLE IF NOT EXISTS cost_corrections (
    "ResourceId" text NOT NULL,
    "ChargePeriodStart" timestamptz NOT NULL,
    previous numeric,
    corrected numeric,
    previous_unpriced_hours double precision NOT NULL,
    corrected_unpriced_hours double precision NOT NULL,
    revision int NOT NULL,
    corrected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("ResourceId", "ChargePeriodStart", revision)
);
CREATE TABLE IF NOT EXISTS cost_forecasts (
    prediction_id text PRIMARY KEY,
    scope_value text NOT NULL,
    ts timestamptz NOT NULL,
    record jsonb NOT NULL,
    made_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cost_forecasts_scope ON cost_forecasts (scope_value, ts);
CREATE TABLE IF NOT EXISTS cost_usage (
    resource_id text NOT NULL,
    metric text NOT NULL,
    hour timestamptz NOT NULL,
    max double precision NOT NULL,
    PRIMARY KEY (resource_id, metric, hour)
);
"""

# One statement per batch: rows that differ from what is stored become a new revision,
# rows that do not are left alone (a replay writes nothing).
_UPSERT = """
INSERT INTO cost_rows ("ResourceId", "ResourceName", "ResourceType", "ChargePeriodStart",
    "ChargePeriodEnd", x_granularity, "ListCost", "EffectiveCost", "BilledCost",
    "BillingCurrency", "ServiceName", "RegionId", "ProviderName", x_team, x_env,
    x_instance_type, x_hourly_cost, x_unpriced_hours)
SELECT r, n, t, to_timestamp(s / 1000.0), to_timestamp(e / 1000.0), g, c, c, c, cur, svc,
       reg, prov, team, env, it, rate, u
FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[],
            %s::numeric[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::text[], %s::text[], %s::float8[], %s::float8[])
     AS x(r, n, t, s, e, g, c, cur, svc, reg, prov, team, env, it, rate, u)
ON CONFLICT ("ResourceId", x_granularity, "ChargePeriodStart") DO UPDATE SET
    "ResourceName" = EXCLUDED."ResourceName", "ResourceType" = EXCLUDED."ResourceType",
    "ChargePeriodEnd" = EXCLUDED."ChargePeriodEnd", "ListCost" = EXCLUDED."ListCost",
    "EffectiveCost" = EXCLUDED."EffectiveCost", "BilledCost" = EXCLUDED."BilledCost",
    "BillingCurrency" = EXCLUDED."BillingCurrency", "ServiceName" = EXCLUDED."ServiceName",
    "RegionId" = EXCLUDED."RegionId", "ProviderName" = EXCLUDED."ProviderName",
    x_team = EXCLUDED.x_team, x_env = EXCLUDED.x_env, x_instance_type = EXCLUDED.x_instance_type,
    x_hourly_cost = EXCLUDED.x_hourly_cost, x_unpriced_hours = EXCLUDED.x_unpriced_hours,
    x_revision = cost_rows.x_revision + 1, x_updated_at = now()
WHERE (cost_rows."ResourceName", cost_rows."ResourceType", cost_rows."EffectiveCost",
       cost_rows."BillingCurrency", cost_rows."ServiceName", cost_rows."RegionId",
       cost_rows."ProviderName", cost_rows.x_team, cost_rows.x_env, cost_rows.x_instance_type,
       cost_rows.x_hourly_cost, cost_rows.x_unpriced_hours)
   IS DISTINCT FROM (EXCLUDED."ResourceName", EXCLUDED."ResourceType", EXCLUDED."EffectiveCost",
       EXCLUDED."BillingCurrency", EXCLUDED."ServiceName", EXCLUDED."RegionId",
       EXCLUDED."ProviderName", EXCLUDED.x_team, EXCLUDED.x_env, EXCLUDED.x_instance_type,
       EXCLUDED.x_hourly_cost, EXCLUDED.x_unpriced_hours)
"""


@dataclass(frozen=True, slots=True)
class CostRow:
    """One window of one asset (``cost`` None: no part of it priced)."""

    resource_id: str
    name: str
    asset_type: str
    start: int
    end: int
    granularity: str
    cost: Decimal | None
    currency: str
    service: str
    region: str
    provider: str
    team: str
    env: str
    instance_type: str | None
    hourly_cost: float | None
    unpriced_hours: float


@dataclass(frozen=True, slots=True)
class Correction:
    """An hour row that a late event changed: its stored value and its new one."""

    resource_id: str
    start: int
    previous: Decimal | None
    corrected: Decimal | None
    previous_unpriced_hours: float
    corrected_unpriced_hours: float


@dataclass(frozen=True, slots=True)
class UsageRow:
    """The highest value of a utilisation metric of an asset in an hour."""

    resource_id: str
    metric: str
    hour: int
    max: float


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class CostStore(BatchSink[CostRow]):
    """``cost_rows``, ``cost_corrections`` and ``cost_usage`` (see the module docstring)."""

    def __init__(self, dsn: str, **kwargs: Any) -> None:
        super().__init__(name="postgres.cost_rows", **kwargs)
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection | None = None
        self.timescale = False
        self._months: set[int] = set()

    @classmethod
    def reading(cls, conn: psycopg.AsyncConnection[Any]) -> CostStore:
        """The store's reads over ``conn`` (a tuple-row connection its owner keeps and
        closes, such as the API's pooled one)."""
        store = cls(dsn="")
        store._conn = conn
        return store

    async def setup(self) -> None:
        await self.close()
        self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        self.timescale = await create_tables(self._conn)
        self._months.clear()

    @property
    def conn(self) -> psycopg.AsyncConnection:
        if self._conn is None:
            raise psycopg.OperationalError("cost store not connected")
        return self._conn

    async def write(self, batch: Sequence[CostRow]) -> int:
        """Upsert ``batch``; the number of rows new or revised."""
        if not batch:
            return 0
        if not self.timescale:
            for month in sorted({month_start(r.start) for r in batch} - self._months):
                await create_month_partition(self.conn, month)
                self._months.add(month)
        columns = [list(c) for c in zip(*(astuple(r) for r in batch), strict=True)]
        cur = await self.conn.execute(_UPSERT, columns)
        return max(cur.rowcount, 0)

    async def hours(self, resource_id: str, start: int, end: int
                    ) -> dict[int, tuple[Decimal | None, float, int]]:
        """Stored hour rows of ``resource_id`` starting in ``[start, end)``: start →
        (cost, unpriced hours, revision)."""
        cur = await self.conn.execute(
            """SELECT "ChargePeriodStart", "EffectiveCost", x_unpriced_hours, x_revision
               FROM cost_rows WHERE "ResourceId" = %s AND x_granularity = 'hour'
               AND "ChargePeriodStart" >= %s AND "ChargePeriodStart" < %s""",
            (resource_id, _ts(start), _ts(end)))
        return {_ms(s): (c, u, r) for s, c, u, r in await cur.fetchall()}

    async def correct(self, corrections: Sequence[tuple[Correction, int]]) -> None:
        """Append ``(correction, revision it made)`` pairs to ``cost_corrections``."""
        async with self.conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO cost_corrections ("ResourceId", "ChargePeriodStart", previous,
                   corrected, previous_unpriced_hours, corrected_unpriced_hours, revision)
                   VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                [(c.resource_id, _ts(c.start), c.previous, c.corrected,
                  c.previous_unpriced_hours, c.corrected_unpriced_hours, rev)
                 for c, rev in corrections])

    async def accrued(self, resource_ids: Sequence[str]) -> dict[str, int]:
        """End of the latest hour row of each of ``resource_ids`` that has one."""
        cur = await self.conn.execute(
            """SELECT "ResourceId", max("ChargePeriodEnd") FROM cost_rows
               WHERE x_granularity = 'hour' AND "ResourceId" = ANY(%s) GROUP BY 1""",
            (list(resource_ids),))
        return {r: _ms(end) for r, end in await cur.fetchall()}

    async def record_usage(self, rows: Sequence[UsageRow]) -> int:
        """Raise each hour's stored maximum to the rows' (idempotent)."""
        if not rows:
            return 0
        cur = await self.conn.execute(
            """INSERT INTO cost_usage (resource_id, metric, hour, max)
               SELECT r, m, to_timestamp(h / 1000.0), v
               FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::float8[]) AS x(r, m, h, v)
               ON CONFLICT (resource_id, metric, hour) DO UPDATE SET max = EXCLUDED.max
               WHERE EXCLUDED.max > cost_usage.max""",
            [list(c) for c in zip(*(astuple(r) for r in rows), strict=True)])
        return max(cur.rowcount, 0)

    async def spend(self, by: Grouping, start: int, end: int
                    ) -> list[tuple[str, float | None, float]]:
        """Cost of the hours starting in ``[start, end)`` grouped ``by``: (key, cost or
        None when nothing in the group was priced, unpriced hours), costliest first."""
        cur = await self.conn.execute(sql.SQL(
            """SELECT {col}, sum("EffectiveCost")::float8, sum(x_unpriced_hours)
               FROM cost_rows WHERE x_granularity = 'hour'
               AND "ChargePeriodStart" >= %s AND "ChargePeriodStart" < %s
               GROUP BY 1 ORDER BY 2 DESC NULLS LAST, 1""").format(
            col=sql.Identifier(GROUPINGS[by])), (_ts(start), _ts(end)))
        return [(k, c, u) for k, c, u in await cur.fetchall()]

    async def daily(self, team: str | None, start: int, end: int) -> list[tuple[int, float]]:
        """Cost per UTC day starting in ``[start, end)``, of ``team`` (None: everyone)."""
        cur = await self.conn.execute(
            """SELECT "ChargePeriodStart", coalesce(sum("EffectiveCost"), 0)::float8
               FROM cost_rows WHERE x_granularity = 'day'
               AND "ChargePeriodStart" >= %s AND "ChargePeriodStart" < %s
               AND (%s::text IS NULL OR x_team = %s) GROUP BY 1 ORDER BY 1""",
            (_ts(start), _ts(end), team, team))
        return [(_ms(day), cost) for day, cost in await cur.fetchall()]

    async def daily_by_team(self, start: int, end: int, limit: int | None = None
                            ) -> list[tuple[str, int, float]]:
        """(team, day, cost) of the days starting in ``[start, end)``, by team and day
        (the first ``limit``)."""
        cur = await self.conn.execute(
            """SELECT x_team, "ChargePeriodStart", coalesce(sum("EffectiveCost"), 0)::float8
               FROM cost_rows WHERE x_granularity = 'day'
               AND "ChargePeriodStart" >= %s AND "ChargePeriodStart" < %s
               GROUP BY 1, 2 ORDER BY 1, 2 LIMIT %s""", (_ts(start), _ts(end), limit))
        return [(team, _ms(day), cost) for team, day, cost in await cur.fetchall()]

    async def teams(self, start: int, end: int) -> list[str]:
        """Teams with day rows starting in ``[start, end)``."""
        cur = await self.conn.execute(
            """SELECT DISTINCT x_team FROM cost_rows WHERE x_granularity = 'day'
               AND "ChargePeriodStart" >= %s AND "ChargePeriodStart" < %s ORDER BY 1""",
            (_ts(start), _ts(end)))
        return [t for (t,) in await cur.fetchall()]

    async def assets(self, at: int) -> list[dict[str, Any]]:
        """Every asset alive in the hour before ``at``: its latest hour row's placement
        and rate."""
        cur = await self.conn.execute(
            """SELECT DISTINCT ON ("ResourceId") "ResourceId", "ResourceName", "ResourceType",
                      x_team, x_env, "ProviderName", "RegionId", x_instance_type, x_hourly_cost
               FROM cost_rows WHERE x_granularity = 'hour' AND "ChargePeriodEnd" >= %s
               AND "ChargePeriodStart" < %s ORDER BY "ResourceId", "ChargePeriodStart" DESC""",
            (_ts(at - 3_600_000), _ts(at)))
        keys = ("resource_id", "name", "asset_type", "team", "env", "provider", "region",
                "instance_type", "hourly_cost")
        return [dict(zip(keys, row, strict=True)) for row in await cur.fetchall()]

    async def usage(self, start: int, end: int) -> list[UsageRow]:
        """Hourly maxima of the hours starting in ``[start, end)``."""
        cur = await self.conn.execute(
            """SELECT resource_id, metric, hour, max FROM cost_usage
               WHERE hour >= %s AND hour < %s ORDER BY 1, 2, 3""", (_ts(start), _ts(end)))
        return [UsageRow(r, m, _ms(h), v) for r, m, h, v in await cur.fetchall()]

    async def save_forecasts(self, records: Sequence[dict[str, Any]]) -> None:
        """Keep published ``CostForecast`` records (a recomputation replaces its own id):
        a day's actual spend is judged against the forecast made before it."""
        async with self.conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO cost_forecasts (prediction_id, scope_value, ts, record)
                   VALUES (%s, %s, %s, %s) ON CONFLICT (prediction_id)
                   DO UPDATE SET record = EXCLUDED.record, made_at = now()""",
                [(r["prediction_id"], r["scope_value"], _ts(r["ts"]), Jsonb(r))
                 for r in records])

    async def forecasts(self, since: int) -> dict[str, list[dict[str, Any]]]:
        """Stored forecasts whose first day is at or after ``since``, by scope value."""
        cur = await self.conn.execute(
            """SELECT scope_value, record FROM cost_forecasts WHERE ts >= %s ORDER BY ts""",
            (_ts(since),))
        out: dict[str, list[dict[str, Any]]] = {}
        for scope, record in await cur.fetchall():
            out.setdefault(scope, []).append(record)
        return out

    async def latest_forecasts(self, scope: str | None = None, after: str | None = None,
                               limit: int = 100) -> list[tuple[str, Any]]:
        """(scope value, record) of the newest stored forecast of each scope value (or of
        ``scope``) after ``after``, by scope value."""
        cur = await self.conn.execute(
            """SELECT DISTINCT ON (scope_value) scope_value, record FROM cost_forecasts
               WHERE (%(s)s::text IS NULL OR scope_value = %(s)s)
               AND (%(a)s::text IS NULL OR scope_value > %(a)s)
               ORDER BY scope_value, ts DESC, made_at DESC LIMIT %(n)s""",
            {"s": scope, "a": after, "n": limit})
        return [(value, record) for value, record in await cur.fetchall()]

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


async def create_tables(conn: psycopg.AsyncConnection) -> bool:
    """Create the cost tables if missing; True when ``cost_rows`` is a hypertable."""
    found = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    timescale = await found.fetchone() is not None
    partitioned = "" if timescale else ' PARTITION BY RANGE ("ChargePeriodStart")'
    if timescale:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    await conn.execute(_DDL.replace("{partitioned}", partitioned))
    if timescale:
        await conn.execute("""SELECT create_hypertable('cost_rows', 'ChargePeriodStart',
                              chunk_time_interval => interval '30 days', if_not_exists => TRUE)""")
    else:
        await conn.execute("CREATE TABLE IF NOT EXISTS cost_rows_default "
                           "PARTITION OF cost_rows DEFAULT")
    return timescale


async def create_month_partition(conn: psycopg.AsyncConnection, start: int) -> None:
    """Create the native partition of ``cost_rows`` for the month starting at ``start``
    (idempotent, race-safe); created before any row of the month is written, so the
    default partition never holds a month's rows."""
    lo = _ts(start)
    hi = _ts(next_month(start))
    stmt = sql.SQL("CREATE TABLE IF NOT EXISTS {part} PARTITION OF cost_rows "
                   "FOR VALUES FROM ({lo}) TO ({hi})").format(
        part=sql.Identifier(f"cost_rows_p{lo:%Y%m}"), lo=sql.Literal(lo), hi=sql.Literal(hi))
    with suppress(psycopg.errors.DuplicateTable):  # created concurrently by another worker
        await conn.execute(stmt)


async def connect_store(dsn: str) -> CostStore:
    """A connected store (for the CLI)."""
    store = CostStore(dsn)
    await store.ready()
    return store
