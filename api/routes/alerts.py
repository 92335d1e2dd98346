"""``GET /api/v1/alerts``: the current state of each alert, newest first."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query

from dharma.api.live_state import (
    TIME_DESCRIPTION,
    TIME_PATTERN,
    Page,
    State,
    time_ms,
)

router = APIRouter(tags=["alerts"])

SEVERITIES = r"^(info|warning|critical)(,(info|warning|critical)){0,2}$"


@router.get("/alerts")
async def alerts(
    page: Page,
    state: State,
    status: Literal["firing", "resolved"] | None = Query(None),
    severity: str | None = Query(None, pattern=SEVERITIES,
                                 description="One severity, or several separated by commas."),
    resource: str | None = Query(None, min_length=1, max_length=256,
                                 description="The resource (the alert's source)."),
    since: str | None = Query(None, pattern=TIME_PATTERN, description=TIME_DESCRIPTION),
    until: str | None = Query(None, pattern=TIME_PATTERN, description=TIME_DESCRIPTION),
) -> dict[str, Any]:
    """The latest notification of each alert (by fingerprint) read in the lookback and
    since, with ``resource`` (its source), ``title`` (its summary), ``first_seen`` and
    ``last_seen`` (epoch ms); filtered on the latest notification's ``ts``."""
    after = page.after_key(int, str)
    rows = state.views.alerts.query(
        status=status, severity=set(severity.split(",")) if severity else None,
        resource=resource, since=time_ms(since, "since"), until=time_ms(until, "until"),
        after=after, limit=page.limit + 1)
    return page.result(rows, ("ts", "fingerprint"))
