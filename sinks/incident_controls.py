"""The operators' side of the incident store (:mod:`dharma.sinks.incidents`), for
``dharma incidents`` and ``dharma remediation``: synchronous reads of incidents and
remediations, an approval, and the global pause.

Operators write two things only, both read back by the healing worker on its tick:
``remediations.approved_by`` (a remediation awaiting approval is then ruled again by
every other guard and requested) and the ``paused`` control (while it is ``true``
the worker defers every decision with guard ``paused``; on resume it rules them
again).  Each write records who and when: the approval in the incident's timeline,
the pause in ``healing_controls``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dharma.sinks.incidents import (
    AlertRow,
    IncidentRow,
    IncidentStore,
    RemediationRow,
    TimelineEntry,
    connect_store,
)
from dharma.streams.errors import DharmaError

__all__ = ["IncidentDetail", "NotApprovable", "PauseState", "approve", "deferred_by_pause",
           "incident_detail",
           "list_incidents", "list_remediations", "pause_state", "set_paused"]

T = TypeVar("T")

#: Why the pause was set (the worker reads only ``value``).
_CONTROLS_DDL = ("ALTER TABLE healing_controls "
                 "ADD COLUMN IF NOT EXISTS reason text NOT NULL DEFAULT ''")


class NotApprovable(DharmaError):
    """The remediation is unknown, or not waiting for an approval."""


@dataclass(frozen=True)
class IncidentDetail:
    """An incident with its alerts, remediations and timeline (oldest first)."""

    incident: IncidentRow
    alerts: list[AlertRow]
    remediations: list[RemediationRow]
    timeline: list[TimelineEntry]


@dataclass(frozen=True)
class PauseState:
    """The global pause: whether it is on, who set it last, when (epoch ms), why."""

    paused: bool
    by: str
    at: int
    reason: str = ""


def _read(dsn: str, question: Callable[[IncidentStore], Awaitable[T]]) -> T:
    """``question(store)`` on a store connected for it alone."""

    async def ask() -> T:
        store = IncidentStore(dsn)
        await store.setup()
        try:
            return await question(store)
        finally:
            await store.close()

    return asyncio.run(ask())


def list_incidents(dsn: str, statuses: Sequence[str] = (), limit: int = 50
                   ) -> list[IncidentRow]:
    """Incidents of ``statuses`` (all when empty), newest first."""
    return _read(dsn, lambda store: store.incidents(statuses=statuses, limit=limit))


def incident_detail(dsn: str, incident_id: str) -> IncidentDetail | None:
    """Everything the store holds about ``incident_id``; None when it is unknown."""

    async def detail(store: IncidentStore) -> IncidentDetail | None:
        found = await store.incidents(ids=[incident_id])
        if not found:
            return None
        return IncidentDetail(found[0], await store.alerts_of(incident_id),
                              await store.remediations(incidents=[incident_id]),
                              await store.timeline(incident_id))

    return _read(dsn, detail)


def list_remediations(dsn: str, statuses: Sequence[str] = (), limit: int = 50
                      ) -> list[RemediationRow]:
    """Remediations of ``statuses`` (all when empty), newest decision first."""
    found = _read(dsn, lambda store: store.remediations(statuses=statuses))
    return found[::-1][:limit]


def approve(dsn: str, remediation_id: str, by: str) -> tuple[RemediationRow, bool]:
    """Approve a remediation awaiting approval: the remediation, and False when it
    was approved already (by whom: ``approved_by``).  Raises :class:`NotApprovable`
    for an unknown id or any other status: nothing else is ever approved."""
    now = int(time.time() * 1000)
    with connect_store(dsn) as conn, conn.transaction():
        rows = conn.execute(
            "SELECT incident_id, status, approved_by, action, playbook, target "
            "FROM remediations WHERE remediation_id = %s FOR UPDATE",
            (remediation_id,)).fetchall()
        if not rows:
            raise NotApprovable(f"no remediation {remediation_id!r}")
        row = rows[0]
        status, approved_by = row["status"], row["approved_by"]
        if status != "awaiting_approval":
            raise NotApprovable(f"remediation {remediation_id} is {status}, not "
                                "awaiting_approval: only a remediation awaiting approval "
                                "can be approved")
        first = approved_by is None
        if first:
            conn.execute("UPDATE remediations SET approved_by = %s WHERE remediation_id = %s",
                         (by, remediation_id))
            detail = {"remediation_id": remediation_id, "by": by, "action": row["action"],
                      "playbook": row["playbook"], "target": row["target"]}
            conn.execute(
                "INSERT INTO incident_timeline (key, incident_id, at, kind, detail) VALUES "
                "(%s, %s, %s, 'approval', %s) ON CONFLICT (key) DO NOTHING",
                (f"{row['incident_id']}:approval:{remediation_id}", row["incident_id"], now,
                 json.dumps(detail)))
    found = _read(dsn, lambda store: store.remediations(ids=[remediation_id]))
    return found[0], first


def deferred_by_pause(dsn: str) -> int:
    """How many decisions wait for a resume (deferred with guard ``paused``)."""
    with connect_store(dsn) as conn:
        rows = conn.execute("SELECT count(*) AS n FROM remediations "
                            "WHERE status = 'deferred' AND guard = 'paused'").fetchall()
    return int(rows[0]["n"])


def pause_state(dsn: str) -> PauseState | None:
    """The pause as last set; None when nobody ever paused or resumed."""
    with connect_store(dsn) as conn:
        conn.execute(_CONTROLS_DDL)
        rows = conn.execute(
            "SELECT value, updated_by, (extract(epoch FROM updated_at) * 1000)::bigint AS at,"
            " reason FROM healing_controls WHERE name = 'paused'").fetchall()
    return _pause(rows[0]) if rows else None


def set_paused(dsn: str, paused: bool, by: str, reason: str = ""
               ) -> tuple[PauseState | None, PauseState]:
    """Pause or resume remediation; the state before and after.  Setting the state it
    is in already changes nothing (its who, when and why stay)."""
    before = pause_state(dsn)
    if before is not None and before.paused == paused:
        return before, before
    with connect_store(dsn) as conn:
        rows = conn.execute(
            "INSERT INTO healing_controls (name, value, updated_by, updated_at, reason) "
            "VALUES ('paused', %s, %s, now(), %s) ON CONFLICT (name) DO UPDATE SET "
            "value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, "
            "updated_at = EXCLUDED.updated_at, reason = EXCLUDED.reason RETURNING value, "
            "updated_by, (extract(epoch FROM updated_at) * 1000)::bigint AS at, reason",
            ("true" if paused else "false", by, reason)).fetchall()
    return before, _pause(rows[0])


def _pause(row: dict[str, Any]) -> PauseState:
    return PauseState(row["value"] == "true", row["updated_by"], int(row["at"]), row["reason"])
