"""``/api/v1/incidents``: the incidents self-healing opened, and one incident's story.

Read from the healing worker's store (:class:`dharma.sinks.incidents.IncidentStore`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from psycopg.rows import dict_row

from dharma.agents.healing.timeline import one_line, view_kind
from dharma.api.queries import (
    NAME_PATTERN,
    Name,
    Page,
    StoresDep,
    Time,
    answer_503,
    epoch_ms,
    paged,
)
from dharma.sinks.incident_rows import DDL, IncidentRow, TimelineEntry
from dharma.sinks.incidents import IncidentStore
from dharma.streams.alerting import Severity

__all__ = ["router"]

router = APIRouter(tags=["incidents"], dependencies=[Depends(answer_503)])

#: Most timeline entries one incident answers with (its first ones).
TIMELINE_LIMIT = 1000
#: Store bookkeeping, not part of an incident.
_INTERNAL = ("published", "changed")
Status = Literal["pending", "open", "acknowledged", "resolved"]



async def _prepare(conn: Any) -> None:
    await conn.execute(DDL)


def incident_json(incident: IncidentRow) -> dict[str, Any]:
    """An incident as the API shows it (without the store's bookkeeping)."""
    return {k: v for k, v in asdict(incident).items() if k not in _INTERNAL}


def timeline_json(entry: TimelineEntry) -> dict[str, Any]:
    """A timeline entry: its time, its kind in a timeline view, one line, the detail (a
    detail that is not an object, which the worker never writes, as ``{"value": ...}``)."""
    detail = entry.detail if isinstance(entry.detail, dict) else {"value": entry.detail}
    return {"ts": entry.at, "kind": view_kind(entry.kind, detail),
            "summary": one_line(entry.kind, detail), "detail": detail,
            "recorded_as": entry.kind}


@router.get("/incidents")
async def list_incidents(
    page: Annotated[Page, Depends(paged(int, str))], store: StoresDep,
    status: Status | None = None, severity: Severity | None = None,
    resource: Name = None,
    since: Time = None, until: Time = None,
) -> dict[str, Any]:
    """Incidents opened in ``[since, until)``, newest first; ``resource``: its root cause
    or the source of one of its alerts."""
    after = (page.after[0], page.after[1]) if page.after else None
    async with store.postgres("incidents", _prepare, dict_row) as conn:
        rows = await IncidentStore.reading(conn).incident_page(
            status=status, severity=severity, resource=resource,
            since=epoch_ms(since, "since"), until=epoch_ms(until, "until"), after=after,
            limit=page.limit + 1)
    return page.result(rows, lambda i: (i.opened_at, i.incident_id), incident_json)


@router.get("/incidents/{incident_id}")
async def incident(store: StoresDep,
                   incident_id: Annotated[str, Path(pattern=NAME_PATTERN)]) -> dict[str, Any]:
    """One incident with its alerts, remediations and timeline (oldest first; its first
    1000 entries, ``timeline_truncated`` when there are more)."""
    async with store.postgres("incidents", _prepare, dict_row) as conn:
        reads = IncidentStore.reading(conn)
        found = await reads.incidents(ids=[incident_id], limit=1)
        if not found:
            raise HTTPException(404, f"no incident {incident_id!r}")
        alerts = await reads.alerts_of(incident_id)
        remediations = await reads.remediations(incidents=[incident_id])
        timeline = await reads.timeline(incident_id, TIMELINE_LIMIT + 1)
    return {**incident_json(found[0]), "alerts": [asdict(a) for a in alerts],
            "remediations": [{k: v for k, v in asdict(r).items() if k != "published"}
                             for r in remediations],
            "timeline": [timeline_json(e) for e in timeline[:TIMELINE_LIMIT]],
            "timeline_truncated": len(timeline) > TIMELINE_LIMIT}
