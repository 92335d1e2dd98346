"""Self-healing's state in PostgreSQL: incidents with their alerts and timeline,
remediations (one per incident episode, playbook, attempt and kind: a unique key),
the deployments, chaos experiments and health checks the guards look at, the
escalations sent once, and the operators' controls (pause, approvals).

It is the healing worker's only state: a worker killed at any point finds
everything here, and every write is idempotent (keys derived from what they name),
so replaying its input changes nothing twice.  Rows are plain values; the
capability decides what they mean.  The ``published`` columns are an outbox: the
status last published, so a worker that died between storing and publishing
publishes on restart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dharma.sinks.base import BatchSink
from dharma.sinks.incident_rows import (
    DDL,
    AlertRow,
    IncidentRow,
    RemediationRow,
    TimelineEntry,
    values_of,
)

__all__ = ["AlertRow", "IncidentRow", "IncidentStore", "RemediationRow", "TimelineEntry",
           "connect_store"]

Query = str | sql.Composed


def _columns(cls: type, alias: str | None = None) -> sql.Composable:
    names = [f.name for f in fields(cls)]
    return sql.SQL(", ").join(sql.Identifier(*([alias] if alias else []), n) for n in names)


def _insert(table: str, values: dict[str, Any]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(map(sql.Placeholder, values)))


def _upsert(table: str, row: Any, key: Sequence[str],
            keep: Sequence[str] = ()) -> tuple[sql.Composed, dict[str, Any]]:
    values = values_of(row)
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
        for c in values if c not in (*key, *keep))
    query = sql.SQL("{} ON CONFLICT ({}) DO UPDATE SET {}").format(
        _insert(table, values), sql.SQL(", ").join(map(sql.Identifier, key)), updates)
    return query, values


def _select(cls: type, rest: str, alias: str | None = None) -> sql.Composed:
    """``SELECT`` the fields of ``cls`` followed by ``rest`` (constant SQL text)."""
    return sql.SQL("SELECT {} ").format(_columns(cls, alias)) + sql.SQL(rest)


class IncidentStore(BatchSink[TimelineEntry]):
    """The healing worker's state (see the module docstring); ``write`` appends
    timeline entries."""

    def __init__(self, dsn: str, **kwargs: Any) -> None:
        super().__init__(name="postgres.incidents", **kwargs)
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection[dict[str, Any]] | None = None

    @classmethod
    def reading(cls, conn: psycopg.AsyncConnection[dict[str, Any]]) -> IncidentStore:
        """The store's reads over ``conn`` (a ``dict_row`` connection its owner keeps
        and closes, such as the API's pooled one)."""
        store = cls(dsn="")
        store._conn = conn
        return store

    async def setup(self) -> None:
        await self.close()
        self._conn = await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, row_factory=dict_row)
        await self._conn.execute(DDL)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _rows(self, query: Query, params: Any = None) -> list[dict[str, Any]]:
        assert self._conn is not None
        cur = await self._conn.execute(query, params)
        return await cur.fetchall()

    async def _run(self, query: Query, params: Any = None) -> None:
        assert self._conn is not None
        await self._conn.execute(query, params)

    async def write(self, batch: Sequence[TimelineEntry]) -> int:
        assert self._conn is not None
        stored = 0
        async with self._conn.cursor() as cur:
            for entry in batch:
                await cur.execute(
                    "INSERT INTO incident_timeline (key, incident_id, at, kind, detail) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
                    (entry.key, entry.incident_id, entry.at, entry.kind, json.dumps(entry.detail)))
                stored += cur.rowcount
        return stored

    # -- incidents --------------------------------------------------------------------
    async def live_alert(self, fingerprint: str) -> AlertRow | None:
        """The alert of ``fingerprint`` in an incident not resolved."""
        rows = await self._rows(_select(
            AlertRow, "FROM incident_alerts a JOIN incidents i USING (incident_id) "
            "WHERE a.fingerprint = %s AND i.status <> 'resolved' LIMIT 1", alias="a"),
            (fingerprint,))
        return AlertRow(**rows[0]) if rows else None

    async def related_alerts(self, source: str, dependencies: Sequence[str]) -> list[AlertRow]:
        """Alerts of unresolved incidents on ``source`` or its ``dependencies``, or on a
        resource that depends on ``source``."""
        rows = await self._rows(_select(
            AlertRow, "FROM incident_alerts a JOIN incidents i USING (incident_id) "
            "WHERE i.status <> 'resolved' AND (a.source = ANY(%s) OR a.depends_on ? %s) "
            "ORDER BY a.first_ts, a.incident_id", alias="a"),
            ([source, *dependencies], source))
        return [AlertRow(**r) for r in rows]

    async def alerting(self, resources: Sequence[str]) -> set[str]:
        """Which of ``resources`` have a firing alert in an unresolved incident."""
        rows = await self._rows(
            "SELECT DISTINCT a.source FROM incident_alerts a JOIN incidents i USING "
            "(incident_id) WHERE a.firing AND i.status <> 'resolved' AND a.source = ANY(%s)",
            (list(resources),))
        return {r["source"] for r in rows}

    async def add_incident(self, incident: IncidentRow) -> bool:
        """Store a new incident; False when it is stored already (a replay)."""
        values = values_of(incident)
        rows = await self._rows(_insert("incidents", values) + sql.SQL(
            " ON CONFLICT DO NOTHING RETURNING incident_id"), values)
        return bool(rows)

    async def save_incident(self, incident: IncidentRow) -> None:
        await self._run(*_upsert("incidents", incident, ("incident_id",)))

    async def save_alert(self, alert: AlertRow) -> None:
        """Store an incident's alert; a repeat keeps its first time and dependencies."""
        await self._run(*_upsert("incident_alerts", alert, ("incident_id", "fingerprint"),
                                 keep=("first_ts", "depends_on")))

    async def merge(self, into: str, others: Sequence[str]) -> None:
        """Move the alerts and timeline of the pending incidents ``others`` into
        ``into`` and drop them (they were never published)."""
        pending = [r["incident_id"] for r in await self._rows(
            "DELETE FROM incidents WHERE incident_id = ANY(%s) AND status = 'pending' "
            "RETURNING incident_id", (list(others),))]
        await self._run("UPDATE incident_alerts SET incident_id = %s WHERE incident_id = ANY(%s)",
                        (into, pending))
        await self._run("UPDATE incident_timeline SET incident_id = %s "
                        "WHERE incident_id = ANY(%s)", (into, pending))

    async def incidents(self, *, statuses: Sequence[str] = (), ids: Sequence[str] = (),
                        limit: int = 1000) -> list[IncidentRow]:
        """Incidents by status or id, newest first."""
        rows = await self._rows(_select(
            IncidentRow, "FROM incidents WHERE "
            "(cardinality(%(s)s::text[]) = 0 OR status = ANY(%(s)s)) AND "
            "(cardinality(%(i)s::text[]) = 0 OR incident_id = ANY(%(i)s)) "
            "ORDER BY opened_at DESC LIMIT %(n)s"), {"s": list(statuses), "i": list(ids),
                                                      "n": limit})
        return [IncidentRow(**r) for r in rows]

    async def incident_page(self, *, status: str | None = None, severity: str | None = None,
                            resource: str | None = None, since: int | None = None,
                            until: int | None = None, after: tuple[int, str] | None = None,
                            limit: int = 100) -> list[IncidentRow]:
        """Incidents newest first (``opened_at``, then id) after the keyset ``after``,
        opened in ``[since, until)``; ``resource``: its root cause or an alert's source."""
        rows = await self._rows(_select(
            IncidentRow, "FROM incidents i WHERE (%(st)s::text IS NULL OR status = %(st)s) "
            "AND (%(sv)s::text IS NULL OR severity = %(sv)s) AND (%(r)s::text IS NULL OR "
            "root = %(r)s OR EXISTS (SELECT 1 FROM incident_alerts a WHERE a.incident_id = "
            "i.incident_id AND a.source = %(r)s)) AND (%(lo)s::bigint IS NULL OR opened_at >= "
            "%(lo)s) AND (%(hi)s::bigint IS NULL OR opened_at < %(hi)s) AND (%(at)s::bigint IS "
            "NULL OR (opened_at, incident_id) < (%(at)s, %(id)s::text)) "
            "ORDER BY opened_at DESC, incident_id DESC LIMIT %(n)s", alias="i"),
            {"st": status, "sv": severity, "r": resource, "lo": since, "hi": until,
             "at": after[0] if after else None, "id": after[1] if after else None,
             "n": limit})
        return [IncidentRow(**r) for r in rows]

    async def due(self, now: int) -> list[IncidentRow]:
        """Incidents whose group wait is over (pending), or grown ones whose group
        interval is (``changed``), oldest due first."""
        rows = await self._rows(_select(
            IncidentRow, "FROM incidents WHERE status <> 'resolved' AND due_at <= %s "
            "AND (status = 'pending' OR changed) ORDER BY due_at, incident_id"), (now,))
        return [IncidentRow(**r) for r in rows]

    async def quiet(self) -> list[IncidentRow]:
        """Open incidents none of whose alerts fires and none of whose remediations is in
        flight (decided, requested, started, or succeeded and not yet verified)."""
        rows = await self._rows(_select(
            IncidentRow, "FROM incidents i WHERE status IN ('open', 'acknowledged') "
            "AND NOT EXISTS (SELECT 1 FROM incident_alerts a WHERE a.incident_id = "
            "i.incident_id AND a.firing) AND NOT EXISTS (SELECT 1 FROM remediations r WHERE "
            "r.incident_id = i.incident_id AND (r.status IN ('decided', 'requested', "
            "'started') OR (r.status = 'succeeded' AND r.outcome IS NULL)))", alias="i"))
        return [IncidentRow(**r) for r in rows]

    async def count_live(self) -> int:
        rows = await self._rows("SELECT count(*) AS n FROM incidents WHERE status <> 'resolved'")
        return int(rows[0]["n"])

    async def alerts_of(self, incident_id: str) -> list[AlertRow]:
        rows = await self._rows(_select(
            AlertRow, "FROM incident_alerts WHERE incident_id = %s ORDER BY first_ts, fingerprint"),
            (incident_id,))
        return [AlertRow(**r) for r in rows]

    async def timeline(self, incident_id: str, limit: int | None = None
                       ) -> list[TimelineEntry]:
        """The timeline of ``incident_id``, oldest first (its first ``limit`` entries)."""
        rows = await self._rows(
            "SELECT key, incident_id, at, kind, detail FROM incident_timeline "
            "WHERE incident_id = %s ORDER BY at, key LIMIT %s", (incident_id, limit))
        return [TimelineEntry(**r) for r in rows]

    # -- remediations -----------------------------------------------------------------
    async def add_remediation(self, remediation: RemediationRow) -> bool:
        """Store a decision; False when its (incident, playbook, attempt, kind) is
        decided already: the idempotency guard."""
        values = values_of(remediation)
        rows = await self._rows(_insert("remediations", values) + sql.SQL(
            " ON CONFLICT DO NOTHING RETURNING remediation_id"), values)
        return bool(rows)

    async def save_remediation(self, remediation: RemediationRow) -> None:
        """Store a remediation's progress; its approval stays (only an operator writes
        it, and this row may have been read before it)."""
        await self._run(*_upsert("remediations", remediation, ("remediation_id",),
                                 keep=("approved_by",)))

    async def remediations(self, *, statuses: Sequence[str] = (), ids: Sequence[str] = (),
                           incidents: Sequence[str] = (), unsettled: bool = False
                           ) -> list[RemediationRow]:
        """Remediations by status, id or incident; ``unsettled``: those whose story is
        not over (not skipped, not failed, not verified)."""
        rows = await self._rows(_select(
            RemediationRow, "FROM remediations WHERE "
            "(cardinality(%(s)s::text[]) = 0 OR status = ANY(%(s)s)) AND "
            "(cardinality(%(r)s::text[]) = 0 OR remediation_id = ANY(%(r)s)) AND "
            "(cardinality(%(i)s::text[]) = 0 OR incident_id = ANY(%(i)s)) AND "
            "(NOT %(u)s OR (status NOT IN ('skipped', 'failed') AND outcome IS NULL)) "
            "ORDER BY decided_at, remediation_id"),
            {"s": list(statuses), "r": list(ids), "i": list(incidents), "u": unsettled})
        return [RemediationRow(**r) for r in rows]

    async def unpublished(self) -> tuple[list[IncidentRow], list[RemediationRow]]:
        """Incidents and remediations whose last state was stored, not published."""
        incidents = await self._rows(_select(
            IncidentRow, "FROM incidents WHERE status <> 'pending' "
            "AND published IS DISTINCT FROM status"))
        remediations = await self._rows(_select(
            RemediationRow, "FROM remediations WHERE published IS DISTINCT FROM status "
            "ORDER BY decided_at"))
        return ([IncidentRow(**r) for r in incidents],
                [RemediationRow(**r) for r in remediations])

    async def mark_published(self, incidents: Sequence[tuple[str, str]],
                             remediations: Sequence[tuple[str, str]]) -> None:
        """Record the statuses published: (id, status) pairs."""
        for incident, status in incidents:
            await self._run("UPDATE incidents SET published = %s WHERE incident_id = %s",
                            (status, incident))
        for remediation, status in remediations:
            await self._run("UPDATE remediations SET published = %s WHERE remediation_id = %s",
                            (status, remediation))

    async def last_requested(self, target: str, playbook: str, other_than: str) -> int | None:
        """When ``playbook`` was last requested on ``target`` for another incident."""
        rows = await self._rows(
            "SELECT max(requested_at) AS at FROM remediations WHERE target = %s AND "
            "playbook = %s AND incident_id <> %s AND kind = 'remediate'",
            (target, playbook, other_than))
        return rows[0]["at"]

    async def requested_since(self, playbook: str, since: int) -> int:
        """How many times ``playbook`` was requested since ``since`` (wall ms)."""
        rows = await self._rows(
            "SELECT count(*) AS n FROM remediations WHERE playbook = %s AND requested_at >= %s "
            "AND kind = 'remediate'", (playbook, since))
        return int(rows[0]["n"])

    # -- what the guards look at ------------------------------------------------------
    async def record_activity(self, kind: str, activity_id: str, resource_id: str,
                              scope: Sequence[str], ts: int, active: bool,
                              until: int | None) -> None:
        """A deployment or experiment starting or ending (an end seen first stays)."""
        if active:
            await self._run(
                "INSERT INTO healing_activity (kind, activity_id, resource_id, scope, started_at,"
                " until) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (kind, activity_id) DO "
                "UPDATE SET started_at = EXCLUDED.started_at, until = EXCLUDED.until, "
                "scope = EXCLUDED.scope",
                (kind, activity_id, resource_id, list(scope), ts, until))
        else:
            await self._run(
                "INSERT INTO healing_activity (kind, activity_id, resource_id, scope, ended_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (kind, activity_id) DO UPDATE SET "
                "ended_at = least(coalesce(healing_activity.ended_at, EXCLUDED.ended_at), "
                "EXCLUDED.ended_at)", (kind, activity_id, resource_id, list(scope), ts))

    async def active(self, kind: str, resource_id: str, at: int | None = None) -> str | None:
        """The id of a ``kind`` activity covering ``resource_id`` that is in progress (no
        end heard of), or, with ``at`` (event time, ms), that was running then."""
        rows = await self._rows(
            "SELECT activity_id FROM healing_activity WHERE kind = %(k)s AND started_at IS NOT "
            "NULL AND (%(r)s = ANY(scope) OR resource_id = %(r)s) AND (CASE WHEN %(at)s::bigint "
            "IS NULL THEN ended_at IS NULL OR ended_at < started_at ELSE started_at <= %(at)s "
            "AND (ended_at IS NULL OR ended_at < started_at OR ended_at > %(at)s) AND "
            "(until IS NULL OR until > %(at)s) END) ORDER BY started_at LIMIT 1",
            {"k": kind, "r": resource_id, "at": at})
        return rows[0]["activity_id"] if rows else None

    async def record_health(self, resource_id: str, ts: int, passing: bool) -> None:
        """A health check result (an older result than the stored one changes nothing
        but the last failure)."""
        await self._run(
            "INSERT INTO healing_health (resource_id, ts, passing, last_failing_ts) VALUES "
            "(%(r)s, %(t)s, %(p)s, CASE WHEN %(p)s THEN NULL ELSE %(t)s END) "
            "ON CONFLICT (resource_id) DO UPDATE SET "
            "passing = CASE WHEN EXCLUDED.ts >= healing_health.ts THEN EXCLUDED.passing "
            "ELSE healing_health.passing END, ts = greatest(healing_health.ts, EXCLUDED.ts), "
            "last_failing_ts = greatest(healing_health.last_failing_ts, EXCLUDED.last_failing_ts)",
            {"r": resource_id, "t": ts, "p": passing})

    async def health(self, resources: Sequence[str]) -> dict[str, tuple[int, bool, int | None]]:
        """resource → (last check ts, passing, last failing ts)."""
        rows = await self._rows(
            "SELECT resource_id, ts, passing, last_failing_ts FROM healing_health "
            "WHERE resource_id = ANY(%s)", (list(resources),))
        return {r["resource_id"]: (r["ts"], r["passing"], r["last_failing_ts"]) for r in rows}

    async def escalate_once(self, key: str, incident_id: str, at: int) -> bool:
        """Claim escalation ``key``; False when it was escalated already."""
        rows = await self._rows(
            "INSERT INTO healing_escalations (key, incident_id, at) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING key", (key, incident_id, at))
        return bool(rows)

    async def forget_escalation(self, key: str) -> None:
        """Drop escalation ``key`` (its condition ended: the next one escalates again)."""
        await self._run("DELETE FROM healing_escalations WHERE key = %s", (key,))

    async def paused(self) -> bool:
        rows = await self._rows("SELECT value FROM healing_controls WHERE name = 'paused'")
        return bool(rows) and rows[0]["value"] == "true"

    async def samples(self, source: str, metrics: Sequence[str],
                      since: int) -> dict[str, list[tuple[int, float]]]:
        """The stored samples of ``source``'s ``metrics`` (all when empty) since ``since``
        (ms), oldest first: what the ingest topology keeps."""
        try:
            rows = await self._rows(
                "SELECT metric, (extract(epoch FROM ts) * 1000)::bigint AS ts, value FROM "
                "metrics_raw WHERE source = %s AND ts >= to_timestamp(%s / 1000.0) AND "
                "(cardinality(%s::text[]) = 0 OR metric = ANY(%s)) ORDER BY ts",
                (source, since, list(metrics), list(metrics)))
        except psycopg.errors.UndefinedTable:
            return {}
        series: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            series.setdefault(r["metric"], []).append((int(r["ts"]), float(r["value"])))
        return series


def connect_store(dsn: str) -> psycopg.Connection[dict[str, Any]]:
    """A synchronous connection to the store with its tables (for the CLI)."""
    conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
    conn.execute(DDL)
    return conn
