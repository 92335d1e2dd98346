"""Providers' bills in PostgreSQL (``cost_billed``, FOCUS column names) and their
reconciliation with the estimated cost rows (``cost_rows``).

Delivery: at-least-once; a line is stored once per ``x_line_id`` (a hash of its content,
``ON CONFLICT DO NOTHING``), so a replayed batch or a file imported again stores nothing
new.  Costs are ``numeric``: exact, as billed.

Reconciliation compares, per ``ResourceId`` and UTC day, the billed cost (the
``BilledCost`` of Usage lines, a line spanning several days spread over them in
proportion to its time in each) with the estimate (``cost_rows``, day rows,
``EffectiveCost``), in one currency.  The relative difference is
``|billed - estimated| / max(|billed|, |estimated|)`` (0 when both are 0): symmetric, at
most 1 when both have the same sign.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg

from dharma.sinks.base import BatchSink
from dharma.streams.errors import DharmaError

__all__ = ["BillStore", "BilledRow", "Discrepancy", "NoEstimates"]

DAY_MS = 86_400_000

_DDL = """
CREATE TABLE IF NOT EXISTS cost_billed (
    x_line_id text PRIMARY KEY,
    x_occurrence int NOT NULL,
    "BillingAccountId" text NOT NULL,
    "ChargeCategory" text NOT NULL,
    "ChargeClass" text,
    "ChargeDescription" text,
    "ChargePeriodStart" timestamptz NOT NULL,
    "ChargePeriodEnd" timestamptz NOT NULL,
    "BilledCost" numeric NOT NULL,
    "EffectiveCost" numeric NOT NULL,
    "ListCost" numeric NOT NULL,
    "BillingCurrency" text NOT NULL,
    "PricingQuantity" numeric,
    "PricingUnit" text,
    "ResourceId" text,
    "ResourceName" text,
    "ResourceType" text,
    "ServiceName" text NOT NULL,
    "RegionId" text,
    "ProviderName" text NOT NULL,
    "Tags" jsonb NOT NULL,
    x_stored_at timestamptz NOT NULL DEFAULT now(),
    CHECK ("ChargePeriodEnd" > "ChargePeriodStart")
);
CREATE INDEX IF NOT EXISTS cost_billed_resource_period
    ON cost_billed ("ResourceId", "ChargePeriodStart")
"""

_INSERT = """
INSERT INTO cost_billed (x_line_id, x_occurrence, "BillingAccountId", "ChargeCategory",
    "ChargeClass", "ChargeDescription", "ChargePeriodStart", "ChargePeriodEnd", "BilledCost",
    "EffectiveCost", "ListCost", "BillingCurrency", "PricingQuantity", "PricingUnit",
    "ResourceId", "ResourceName", "ResourceType", "ServiceName", "RegionId", "ProviderName",
    "Tags")
SELECT id, occ, acct, cat, cls, descr, to_timestamp(s / 1000.0), to_timestamp(e / 1000.0),
       billed, eff, list, cur, qty, unit, rid, rname, rtype, svc, region, provider, tags
FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::bigint[], %s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[],
            %s::text[], %s::numeric[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::text[], %s::text[], %s::text[], %s::jsonb[])
     AS r(id, occ, acct, cat, cls, descr, s, e, billed, eff, list, cur, qty, unit, rid, rname,
          rtype, svc, region, provider, tags)
ON CONFLICT (x_line_id) DO NOTHING
"""

# Days are UTC days: 24 hours from a multiple of 24 hours since the epoch.
_RECONCILE = """
WITH bounds AS (
    SELECT to_timestamp(%(start)s / 1000.0) AS lo, to_timestamp(%(end)s / 1000.0) AS hi
), billed AS (
    SELECT b."ResourceId" AS resource, d.day,
           sum(b."BilledCost"
               * extract(epoch FROM least(b."ChargePeriodEnd", d.day + interval '24 hours')
                                    - greatest(b."ChargePeriodStart", d.day))
               / extract(epoch FROM b."ChargePeriodEnd" - b."ChargePeriodStart")) AS cost
    FROM cost_billed b
    CROSS JOIN LATERAL generate_series(
        date_bin('24 hours', b."ChargePeriodStart", 'epoch'::timestamptz),
        b."ChargePeriodEnd" - interval '1 microsecond', interval '24 hours') AS d(day)
    WHERE b."ChargeCategory" = 'Usage' AND b."ResourceId" IS NOT NULL
      AND b."BillingCurrency" = %(currency)s
      AND b."ChargePeriodEnd" > (SELECT date_bin('24 hours', lo, 'epoch') FROM bounds)
      AND b."ChargePeriodStart" < (SELECT hi FROM bounds)
    GROUP BY 1, 2
), estimated AS (
    SELECT "ResourceId" AS resource, "ChargePeriodStart" AS day,
           sum("EffectiveCost") AS cost, bool_or("EffectiveCost" IS NULL) AS unpriced
    FROM cost_rows
    WHERE x_granularity = 'day' AND "BillingCurrency" = %(currency)s
      AND "ChargePeriodStart" >= (SELECT date_bin('24 hours', lo, 'epoch') FROM bounds)
      AND "ChargePeriodStart" < (SELECT hi FROM bounds)
    GROUP BY 1, 2
), joined AS (
    SELECT coalesce(b.resource, e.resource) AS resource, coalesce(b.day, e.day) AS day,
           b.cost AS billed, CASE WHEN e.unpriced THEN NULL ELSE e.cost END AS estimated,
           e.resource IS NOT NULL AS has_estimate, coalesce(e.unpriced, false) AS unpriced
    FROM billed b FULL JOIN estimated e ON b.resource = e.resource AND b.day = e.day
    WHERE coalesce(b.day, e.day) >= (SELECT date_bin('24 hours', lo, 'epoch') FROM bounds)
      AND coalesce(b.day, e.day) < (SELECT hi FROM bounds)
)
SELECT resource, (extract(epoch FROM day) * 1000)::bigint, billed, estimated, has_estimate,
       unpriced
FROM joined
"""


class BilledRow(NamedTuple):
    """One stored bill line (FOCUS names; times in epoch ms, costs exact)."""

    x_line_id: str
    x_occurrence: int
    BillingAccountId: str
    ChargeCategory: str
    ChargeClass: str | None
    ChargeDescription: str | None
    ChargePeriodStart: int
    ChargePeriodEnd: int
    BilledCost: Decimal
    EffectiveCost: Decimal
    ListCost: Decimal
    BillingCurrency: str
    PricingQuantity: Decimal | None
    PricingUnit: str | None
    ResourceId: str | None
    ResourceName: str | None
    ResourceType: str | None
    ServiceName: str
    RegionId: str | None
    ProviderName: str
    Tags: dict[str, str]


class Discrepancy(NamedTuple):
    """Billed beside estimated cost of one resource and UTC day (``None``: that side has
    nothing; an unpriced estimate is ``None`` with ``status`` ``unpriced``)."""

    resource_id: str
    day: int
    billed: Decimal | None
    estimated: Decimal | None
    difference: Decimal
    relative_difference: Decimal
    status: str

    @classmethod
    def of(cls, resource_id: str, day: int, billed: Decimal | None,
           estimated: Decimal | None, has_estimate: bool, unpriced: bool) -> Discrepancy:
        """The comparison of one resource and day.

        >>> Discrepancy.of("vm", 0, Decimal(10), Decimal(8), True, False)[3:]
        (Decimal('8'), Decimal('2'), Decimal('0.2'), 'differs')
        >>> Discrepancy.of("vm", 0, None, Decimal(3), True, False).status
        'estimated_only'
        """
        zero = Decimal(0)
        diff = (billed or zero) - (estimated or zero)
        scale = max(abs(billed or zero), abs(estimated or zero))
        relative = abs(diff) / scale if scale else Decimal(0)
        status = ("unpriced" if unpriced else "billed_only" if not has_estimate
                  else "estimated_only" if billed is None else "differs")
        return cls(resource_id, day, billed, estimated, diff, relative, status)


class NoEstimates(DharmaError):
    """There is no ``cost_rows`` table: nothing estimated to reconcile with."""


class BillStore(BatchSink[BilledRow]):
    """Stores bill lines in ``cost_billed`` (idempotent on ``x_line_id``) and reconciles
    them with ``cost_rows``."""

    def __init__(self, dsn: str, **kwargs: Any) -> None:
        super().__init__(name="postgres.cost_billed", **kwargs)
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection | None = None

    async def setup(self) -> None:
        await self.close()
        self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        await self._conn.execute(_DDL)

    async def write(self, batch: Sequence[BilledRow]) -> int:
        assert self._conn is not None
        columns = [list(column) for column in zip(*batch, strict=True)]
        columns[-1] = [json.dumps(tags, sort_keys=True) for tags in columns[-1]]
        cur = await self._conn.execute(_INSERT, columns)
        return max(cur.rowcount, 0)

    async def reconcile(self, start_ms: int, end_ms: int, threshold: float,
                        currency: str) -> list[Discrepancy]:
        """Resource-days of ``[start_ms, end_ms)`` (whole UTC days from the one holding
        ``start_ms``) whose billed and estimated cost in ``currency`` differ by more than
        ``threshold`` (relative), or that only one side has; largest difference first."""
        assert self._conn is not None
        cur = await self._conn.execute("SELECT to_regclass('cost_rows') IS NOT NULL")
        found = await cur.fetchone()
        if not found or not found[0]:
            raise NoEstimates("no cost_rows table: the cost topology has estimated nothing yet")
        cur = await self._conn.execute(
            _RECONCILE, {"start": start_ms, "end": end_ms, "currency": currency})
        rows = [Discrepancy.of(*row) for row in await cur.fetchall()]
        limit = Decimal(str(threshold))
        reported = [r for r in rows if r.status != "differs" or r.relative_difference > limit]
        return sorted(reported, key=lambda r: (-abs(r.difference), r.resource_id, r.day))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
