"""Budgets and the cost alerts' state in PostgreSQL.

``cost_budgets`` holds one monthly budget per team (``'*'``: the whole estate),
written by ``dharma cost budget`` (the synchronous functions below) and read by the
cost worker on its schedule (:class:`BudgetStore`).  ``cost_alert_state`` holds the
last notification of every cost alert (its record, as published on
``alerts.notifications``) so a worker that restarts knows which ones are firing and
fires none of them twice.  Rows are plain values; the cost capability decides what
they mean (and validates a stored record before trusting it).

Writes are idempotent: a budget is keyed by its team; an alert's state by its
fingerprint, and a record never replaces a later one of the same fingerprint (the
times of one alert only grow: a replay changes nothing).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from dharma.streams.errors import DharmaError

__all__ = ["DDL", "TOTAL", "BudgetRow", "BudgetStore", "InvalidBudget", "budgets_of",
           "delete_budget",
           "list_budgets", "set_budget"]

#: The ``team`` of the whole estate's budget.
TOTAL = "*"

DDL = """
CREATE TABLE IF NOT EXISTS cost_budgets (
    team text PRIMARY KEY,
    monthly numeric NOT NULL CHECK (monthly > 0 AND monthly < 'Infinity'),
    currency text NOT NULL,
    set_by text NOT NULL,
    set_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS cost_alert_state (
    fingerprint text PRIMARY KEY,
    kind text NOT NULL,
    month text NOT NULL,
    status text NOT NULL CHECK (status IN ('firing', 'resolved')),
    since timestamptz NOT NULL,
    ts bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS cost_alert_state_firing ON cost_alert_state (status, month)
"""

_SELECT_BUDGETS = ("SELECT team, monthly::float8 AS monthly, currency, set_by, "
                   "(extract(epoch FROM set_at) * 1000)::bigint AS set_at FROM cost_budgets "
                   "ORDER BY team")

_SAVE_ALERT = """
INSERT INTO cost_alert_state (fingerprint, kind, month, status, since, ts, record)
VALUES (%(fingerprint)s, %(kind)s, %(month)s, %(status)s,
        to_timestamp(%(since)s / 1000.0), %(ts)s, %(record)s)
ON CONFLICT (fingerprint) DO UPDATE SET kind = EXCLUDED.kind, month = EXCLUDED.month,
    status = EXCLUDED.status, since = EXCLUDED.since, ts = EXCLUDED.ts, record = EXCLUDED.record
WHERE cost_alert_state.ts <= EXCLUDED.ts
"""


class InvalidBudget(DharmaError):
    """A budget that cannot be stored (not a positive amount, no team)."""


@dataclass(frozen=True)
class BudgetRow:
    """A stored budget: team (``'*'``: the estate), monthly amount, currency, who set
    it and when (epoch ms)."""

    team: str
    monthly: float
    currency: str
    set_by: str
    set_at: int


def _checked(team: str, monthly: float) -> None:
    if not team.strip():
        raise InvalidBudget("a budget needs a team (or --total for the whole estate)")
    if not (math.isfinite(monthly) and monthly > 0):
        raise InvalidBudget(f"a monthly budget must be a positive amount, not {monthly}")


def _connect(dsn: str) -> psycopg.Connection[dict[str, Any]]:
    conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
    conn.execute(DDL)
    return conn


def set_budget(dsn: str, team: str, monthly: float, currency: str, by: str) -> BudgetRow:
    """Store (or replace) the monthly budget of ``team``; the stored row."""
    _checked(team, monthly)
    with _connect(dsn) as conn:
        conn.execute(
            "INSERT INTO cost_budgets (team, monthly, currency, set_by, set_at) "
            "VALUES (%s, %s, %s, %s, now()) ON CONFLICT (team) DO UPDATE SET "
            "monthly = EXCLUDED.monthly, currency = EXCLUDED.currency, "
            "set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at",
            (team, monthly, currency, by))
        row = conn.execute(_SELECT_BUDGETS.replace("ORDER BY team", "WHERE team = %s"),
                           (team,)).fetchone()
    assert row is not None
    return BudgetRow(**row)


def list_budgets(dsn: str) -> list[BudgetRow]:
    """Every budget, by team (the estate's, ``'*'``, first)."""
    with _connect(dsn) as conn:
        return [BudgetRow(**row) for row in conn.execute(_SELECT_BUDGETS).fetchall()]


def delete_budget(dsn: str, team: str) -> bool:
    """Delete the budget of ``team``; False when it had none."""
    with _connect(dsn) as conn:
        cur = conn.execute("DELETE FROM cost_budgets WHERE team = %s", (team,))
        return cur.rowcount > 0


async def budgets_of(conn: psycopg.AsyncConnection[Any], after: str | None = None,
                     limit: int | None = None) -> list[BudgetRow]:
    """Budgets by team after ``after`` (from the first when None), ``limit`` of them."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_SELECT_BUDGETS.replace("ORDER BY team", "WHERE %(a)s::text IS NULL OR "
                                              "team > %(a)s ORDER BY team LIMIT %(n)s"),
                      {"a": after, "n": limit})
    return [BudgetRow(**row) for row in await cur.fetchall()]


def _alert_row(record: Mapping[str, Any]) -> dict[str, Any]:
    labels = record["labels"]
    return {"fingerprint": record["fingerprint"], "kind": record["kind"],
            "month": labels.get("month", ""), "status": record["status"],
            "since": int(labels["episode_start"]), "ts": int(record["ts"]),
            "record": json.dumps(record, sort_keys=True)}


class BudgetStore:
    """The cost worker's side (async, a small pool that replaces broken connections):
    budgets, and the state of the cost alerts it publishes."""

    name = "postgres.cost_budgets"

    def __init__(self, dsn: str, max_size: int = 2, timeout_s: float = 10.0) -> None:
        """``timeout_s``: longest wait for a connection (PostgreSQL away: an
        ``OperationalError`` after it; the next call connects again)."""
        self._timeout = timeout_s
        self._pool = AsyncConnectionPool(dsn, min_size=1, max_size=max_size, open=False,
                                         timeout=timeout_s,
                                         check=AsyncConnectionPool.check_connection,
                                         kwargs={"autocommit": True})

    async def setup(self) -> None:
        """Open the pool and create the tables."""
        await self._pool.open(wait=True, timeout=self._timeout)
        async with self._pool.connection() as conn:
            await conn.execute(DDL)

    async def close(self) -> None:
        await self._pool.close()

    async def budgets(self) -> list[BudgetRow]:
        """Every budget, by team."""
        async with self._pool.connection() as conn:
            return await budgets_of(conn)

    async def alerts(self) -> list[dict[str, Any]]:
        """The last record of every cost alert, firing or resolved, oldest first (as
        stored: validate it)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT record FROM cost_alert_state ORDER BY ts")
            return [record for (record,) in await cur.fetchall()]

    async def save_alerts(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Store published cost alert records, all or none.  Called after publishing
        them: a worker that dies in between evaluates again and publishes them again
        (at least once), never loses one."""
        if not records:
            return
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(_SAVE_ALERT, [_alert_row(r) for r in records])

    async def forget_resolved(self, before_ms: int) -> int:
        """Drop resolved alerts last changed before ``before_ms``; how many."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM cost_alert_state WHERE status = 'resolved' AND ts < %s",
                (before_ms,))
            return cur.rowcount
