"""The executions of remediation requests in PostgreSQL (``remediation_executions``):
one row per remediation id, claimed before the executor calls anything.

The claim (``INSERT .. ON CONFLICT DO NOTHING RETURNING``) is what makes execution at
most once per id: a request redelivered, replayed after a restart or sent twice finds
its row and is not executed again.  The row keeps the request as it was first claimed
and, once known, its outcome; the executor publishes its reports from the row, so a
request seen again yields the very same reports.  An outcome is written once
(``WHERE outcome IS NULL``): the first writer wins.

Delivery: each operation is one statement, retried by :meth:`BatchSink.call`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg

from dharma.sinks.base import BatchSink

__all__ = ["Claim", "Execution", "ExecutionStore", "Outcome"]

_DDL = """
CREATE TABLE IF NOT EXISTS remediation_executions (
    remediation_id text PRIMARY KEY,
    resource_id text NOT NULL,
    request_event_id text NOT NULL,
    request jsonb NOT NULL,
    started_ms bigint,
    outcome text,
    reason text,
    finished_ms bigint,
    stored_at timestamptz NOT NULL DEFAULT now()
)
"""

_CLAIM = """
INSERT INTO remediation_executions (remediation_id, resource_id, request_event_id, request,
                                    started_ms)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::jsonb[], %s::bigint[])
ON CONFLICT (remediation_id) DO NOTHING
RETURNING remediation_id
"""

_FINISH = """
UPDATE remediation_executions AS e SET outcome = f.o, reason = f.r, finished_ms = f.t
FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]) AS f(i, o, r, t)
WHERE e.remediation_id = f.i AND e.outcome IS NULL
"""

_SELECT = """
SELECT remediation_id, request_event_id, request, started_ms, outcome, reason, finished_ms
FROM remediation_executions WHERE remediation_id = ANY(%s)
"""


class Claim(NamedTuple):
    """A request about to be executed: ``started_ms`` None when it will not be (refused,
    expired)."""

    remediation_id: str
    resource_id: str
    request_event_id: str
    request: dict[str, Any]
    started_ms: int | None


class Outcome(NamedTuple):
    """How a claimed request ended: ``succeeded`` or ``failed``, and why."""

    remediation_id: str
    outcome: str
    reason: str
    finished_ms: int


class Execution(NamedTuple):
    """One stored row (``outcome`` None while its call is in flight, or was cut short)."""

    remediation_id: str
    request_event_id: str
    request: dict[str, Any]
    started_ms: int | None
    outcome: str | None
    reason: str | None
    finished_ms: int | None


class ExecutionStore(BatchSink[Claim]):
    """Claims remediation ids, records their outcomes and reads both back."""

    def __init__(self, dsn: str, **kwargs: Any) -> None:
        super().__init__(name="postgres.remediation_executions", **kwargs)
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection | None = None

    async def setup(self) -> None:
        await self.close()
        self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        await self._conn.execute(_DDL)

    async def write(self, batch: Sequence[Claim]) -> int:
        return len(await self.claim(batch))

    async def claim(self, batch: Sequence[Claim]) -> set[str]:
        """Claim ``batch``; the remediation ids claimed now (not those claimed before)."""
        assert self._conn is not None
        cur = await self._conn.execute(_CLAIM, (
            [c.remediation_id for c in batch], [c.resource_id for c in batch],
            [c.request_event_id for c in batch], [json.dumps(c.request) for c in batch],
            [c.started_ms for c in batch]))
        return {row[0] for row in await cur.fetchall()}

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Record each outcome, unless its row has one already (the first one stays)."""
        assert self._conn is not None
        if outcomes:
            await self._conn.execute(_FINISH, (
                [o.remediation_id for o in outcomes], [o.outcome for o in outcomes],
                [o.reason for o in outcomes], [o.finished_ms for o in outcomes]))

    async def executions(self, remediation_ids: Sequence[str]) -> dict[str, Execution]:
        """The stored rows of these ids."""
        assert self._conn is not None
        if not remediation_ids:
            return {}
        cur = await self._conn.execute(_SELECT, (list(remediation_ids),))
        return {row[0]: Execution(*row) for row in await cur.fetchall()}

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
