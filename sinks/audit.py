"""PostgreSQL audit trail of zero-trust decisions: append-only, idempotent.

Delivery: at-least-once.  Every decision (ALLOW, DENY, CHALLENGE, and each
REVOKE of a live session) is one row keyed by its deterministic
``decision_id``, so replaying the same events stores each once
(``ON CONFLICT DO NOTHING``).  Rows are never updated or deleted: a trigger
rejects ``UPDATE`` and ``DELETE``; a revocation is a new row.
:meth:`AuditSink.append` answers which ALLOWs are committed, so the agent
opens sessions for those only.  An ALLOW whose id the trail held already
counts as committed only when the stored row describes it (an earlier
delivery of the same decision: same request, user, device, resource, action,
time, policy, session and inputs), never when another request took the id.

Masking of ``inputs`` (the request as decided, kept for investigations):

* ``source_ip``: IPv4 truncated to its /24, IPv6 to its /48 (``10.0.1.0/24``);
* ``location``: name and country kept, latitude/longitude rounded to one
  decimal (about 11 km);
* ``last_auth_ts`` kept; roles, device posture, MFA kept (not personal data).

The unmasked request never reaches PostgreSQL.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dharma.sinks.base import BatchSink

__all__ = ["DECISION_PAGE", "AuditSink", "audit_row", "decision_page", "decision_summary",
           "mask_inputs"]

logger = logging.getLogger(__name__)

_COLUMNS = """decision_id text, event_id text, ts bigint, user_id text, device_id text,
    resource text, action text, decision text, trust_score float8, trust_level text,
    policy_id text, policy_version text, reasons text[], session_id text, inputs jsonb"""

#: Append the rows (one statement: one transaction, committed when it returns); the
#: ids of the ALLOWs it inserted.
_APPEND = """
WITH ins AS (
    INSERT INTO {table} (decision_id, event_id, ts, user_id, device_id, resource, action,
        decision, trust_score, trust_level, policy_id, policy_version, reasons, session_id,
        inputs)
    SELECT decision_id, event_id, to_timestamp(ts / 1000.0), user_id, device_id, resource,
        action, decision, trust_score, trust_level, policy_id, policy_version, reasons,
        session_id, inputs
    FROM jsonb_to_recordset(%s::jsonb) AS r({columns})
    ON CONFLICT (decision_id) DO NOTHING
    RETURNING decision_id, decision)
SELECT decision_id FROM ins WHERE decision = 'ALLOW'
"""

#: Of ALLOWs whose rows were there already (or shared their id with another row of the
#: batch), the positions ``i`` of those stored as these very decisions (an earlier
#: delivery), not as another decision under the same id.
_CONFIRM = """
SELECT r.i FROM jsonb_to_recordset(%s::jsonb) AS r(i int, {columns})
JOIN {table} a ON a.decision_id = r.decision_id
WHERE a.decision = 'ALLOW' AND a.event_id = r.event_id AND a.ts = to_timestamp(r.ts / 1000.0)
    AND a.user_id = r.user_id AND a.device_id = r.device_id AND a.resource = r.resource
    AND a.action = r.action AND a.policy_id IS NOT DISTINCT FROM r.policy_id
    AND a.session_id IS NOT DISTINCT FROM r.session_id AND a.inputs = r.inputs
"""

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    decision_id text PRIMARY KEY,
    event_id text NOT NULL,
    ts timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    user_id text NOT NULL,
    device_id text NOT NULL,
    resource text NOT NULL,
    action text NOT NULL,
    decision text NOT NULL,
    trust_score double precision NOT NULL,
    trust_level text NOT NULL,
    policy_id text,
    policy_version text NOT NULL,
    reasons text[] NOT NULL DEFAULT '{{}}',
    session_id text,
    inputs jsonb NOT NULL DEFAULT '{{}}');
CREATE INDEX IF NOT EXISTS {by_user} ON {table} (user_id, ts);
CREATE INDEX IF NOT EXISTS {by_resource} ON {table} (resource, ts);
CREATE INDEX IF NOT EXISTS {by_ts} ON {table} (ts);
CREATE INDEX IF NOT EXISTS {by_event} ON {table} (event_id);
CREATE INDEX IF NOT EXISTS {by_decision} ON {table} (decision, ts);
CREATE OR REPLACE FUNCTION {guard}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'access audit is append-only'; END $$;
DROP TRIGGER IF EXISTS {trigger} ON {table};
CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {guard}();
"""


@lru_cache(maxsize=65_536)
def _mask_ip(value: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return "invalid"
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def mask_inputs(request: dict[str, Any]) -> dict[str, Any]:
    """The request with personal fields coarsened (see the module docstring).

    >>> mask_inputs({"source_ip": "10.0.1.50", "location": {"name": "Office", "lat": 48.8566,
    ...              "lon": 2.3522}})
    {'source_ip': '10.0.1.0/24', 'location': {'name': 'Office', 'lat': 48.9, 'lon': 2.4}}
    """
    out = dict(request)
    ip = out.get("source_ip")
    if ip is not None:
        out["source_ip"] = _mask_ip(ip if isinstance(ip, str) else str(ip))
    loc = out.get("location")
    if isinstance(loc, dict) and (loc.get("lat") is not None or loc.get("lon") is not None):
        out["location"] = {k: round(v, 1) if k in ("lat", "lon") and isinstance(v, float) else v
                           for k, v in loc.items()}
    return out


def audit_row(decision: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """One audit row from a ``TrustDecision`` record and the (unmasked) request record."""
    d = decision
    return {"decision_id": d["decision_id"], "event_id": d["event_id"], "ts": d["ts"],
            "user_id": d["user_id"], "device_id": d["device_id"], "resource": d["resource"],
            "action": d["action"], "decision": d["decision"], "trust_score": d["trust_score"],
            "trust_level": d["trust_level"], "policy_id": d["policy_id"],
            "policy_version": d["policy_version"], "reasons": d["reasons"],
            "session_id": d["session_id"], "inputs": mask_inputs(request)}


class AuditSink(BatchSink[dict[str, Any]]):
    """Appends decision rows (:func:`audit_row`) to ``table``; idempotent on ``decision_id``.

    Parameters
    ----------
    dsn
        libpq connection string.
    table
        Table name (created, with its indexes and append-only trigger, if missing).
    """

    def __init__(self, dsn: str, table: str = "access_audit", **kwargs: Any) -> None:
        super().__init__(name=f"postgres.{table}", **kwargs)
        self._dsn = dsn
        self.table = table
        self._conn: psycopg.AsyncConnection | None = None
        self._query = sql.SQL(_APPEND).format(table=sql.Identifier(table),
                                              columns=sql.SQL(_COLUMNS))
        self._confirm = sql.SQL(_CONFIRM).format(table=sql.Identifier(table),
                                                  columns=sql.SQL(_COLUMNS))

    async def setup(self) -> None:
        await self.close()
        self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        await create_audit_table(self._conn, self.table)

    async def write(self, batch: Sequence[dict[str, Any]]) -> int:
        await self._append(batch)
        return len(batch)

    async def append(self, rows: Sequence[dict[str, Any]]) -> set[int]:
        """Append ``rows`` (retried; :class:`SinkUnavailable` when PostgreSQL stays away);
        the positions in ``rows`` of the ALLOWs the trail holds as such once this returns."""
        if not rows:
            return set()
        return await self.call(lambda: self._append(rows))

    async def _append(self, rows: Sequence[dict[str, Any]]) -> set[int]:
        assert self._conn is not None
        cur = await self._conn.execute(self._query, (orjson.dumps(list(rows)).decode(),))
        inserted = {row[0] for row in await cur.fetchall()}
        ids = [r["decision_id"] for r in rows]
        shared = {i for i, n in Counter(ids).items() if n > 1} if len(set(ids)) < len(ids) \
            else set()
        confirmed, stored = set(), []
        for i, row in enumerate(rows):
            if row["decision"] != "ALLOW":
                continue
            if row["decision_id"] in inserted and row["decision_id"] not in shared:
                confirmed.add(i)  # the usual case: a new ALLOW, inserted now
            else:
                stored.append(dict(row, i=i))
        if stored:
            cur = await self._conn.execute(self._confirm, (orjson.dumps(stored).decode(),))
            confirmed.update(row[0] for row in await cur.fetchall())
        return confirmed

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


async def create_audit_table(conn: psycopg.AsyncConnection, table: str) -> None:
    """Create the audit table, its indexes and the append-only trigger (idempotent)."""
    names = {k: sql.Identifier(f"{table}_{k}") for k in
             ("by_user", "by_resource", "by_ts", "by_event", "by_decision", "guard",
              "trigger")}
    ddl = sql.SQL(_DDL).format(table=sql.Identifier(table), **names)
    async with conn.transaction():
        await conn.execute(sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))")
                           .format(sql.Literal(table)))
        await conn.execute(ddl)


#: The rows of :func:`decision_page`, newest first, after the keyset (ts in µs, id); each
#: filter is served by an index that also gives the order.
DECISION_PAGE = """
SELECT a.decision_id, a.event_id, (extract(epoch FROM a.ts) * 1000)::bigint AS ts,
    (extract(epoch FROM a.ts) * 1000000)::bigint AS ts_us, a.user_id, a.device_id,
    a.resource, a.action, a.decision, a.trust_score, a.trust_level, a.policy_id,
    a.policy_version, a.reasons, a.session_id, a.inputs
FROM {table} a
WHERE (%(user)s::text IS NULL OR a.user_id = %(user)s)
    AND (%(resource)s::text IS NULL OR a.resource = %(resource)s)
    AND (%(decision)s::text IS NULL OR a.decision = %(decision)s)
    AND (%(since)s::timestamptz IS NULL OR a.ts >= %(since)s)
    AND (%(until)s::timestamptz IS NULL OR a.ts < %(until)s)
    AND (%(after)s::timestamptz IS NULL
         OR (a.ts, a.decision_id) < (%(after)s, %(after_id)s::text))
ORDER BY a.ts DESC, a.decision_id DESC LIMIT %(limit)s
"""

_BUCKETS = """
SELECT (extract(epoch FROM bucket) * 1000)::bigint AS bucket, "ALLOW", "DENY", "CHALLENGE",
    "REVOKE"
FROM (SELECT date_bin(%(bucket)s, ts, 'epoch') AS bucket,
        count(*) FILTER (WHERE decision = 'ALLOW') AS "ALLOW",
        count(*) FILTER (WHERE decision = 'DENY') AS "DENY",
        count(*) FILTER (WHERE decision = 'CHALLENGE') AS "CHALLENGE",
        count(*) FILTER (WHERE decision = 'REVOKE') AS "REVOKE"
    FROM {table} WHERE ts >= %(since)s AND ts < %(until)s GROUP BY 1) AS counted
"""

#: A DENY is counted once, by its first reason's kind: the text before any ``:``
#: (``stale_request``, ``role``, ``trust``, ``forbidden by pol_900``); the details after
#: it and in later reasons carry numbers that would make every denial its own reason.
_DENY_REASONS = """
SELECT split_part(reasons[1], ':', 1) AS reason, count(*) AS n FROM {table}
WHERE decision = 'DENY' AND ts >= %(since)s AND ts < %(until)s AND cardinality(reasons) > 0
GROUP BY 1 ORDER BY n DESC, reason LIMIT %(top)s
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(ms: int | None, us: int | None = None) -> datetime | None:
    """A time in ms (or exactly, in µs) as the ``timestamptz`` the table holds."""
    if us is not None:
        return _EPOCH + timedelta(microseconds=us)
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


async def decision_page(conn: psycopg.AsyncConnection[Any], *, table: str = "access_audit",
                        user: str | None = None, resource: str | None = None,
                        decision: str | None = None, since: int | None = None,
                        until: int | None = None, after: tuple[int, str] | None = None,
                        limit: int = 100) -> list[dict[str, Any]]:
    """Audit rows newest first (each with ``ts`` in ms and ``ts_us``, its exact time in
    µs: the keyset ``after`` is ``(ts_us, decision_id)`` of the last row seen)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql.SQL(DECISION_PAGE).format(table=sql.Identifier(table)), {
        "user": user, "resource": resource, "decision": decision, "since": _at(since),
        "until": _at(until), "after": _at(None, after[0]) if after else None,
        "after_id": after[1] if after else None, "limit": limit})
    return await cur.fetchall()


async def decision_summary(conn: psycopg.AsyncConnection[Any], since: int, until: int,
                           bucket_ms: int, *, table: str = "access_audit", top: int = 20
                           ) -> dict[str, Any]:
    """Decisions in ``[since, until)``: per bucket start (ms, buckets aligned on the
    epoch), the count of each decision; the ``top`` kinds of DENY reason with their counts
    (most frequent first; see :data:`_DENY_REASONS`)."""
    window = {"since": _at(since), "until": _at(until), "bucket": timedelta(milliseconds=bucket_ms),
              "top": top}
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql.SQL(_BUCKETS).format(table=sql.Identifier(table)), window)
    buckets = {r.pop("bucket"): r for r in await cur.fetchall()}
    await cur.execute(sql.SQL(_DENY_REASONS).format(table=sql.Identifier(table)), window)
    reasons = [{"reason": r["reason"], "count": r["n"]} for r in await cur.fetchall()]
    return {"buckets": buckets, "deny_reasons": reasons}
