"""``GET /api/v1/series`` and ``/series/{series_id}/points``: recent values and scores."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Path, Query

from dharma.api.live_state import (
    TIME_DESCRIPTION,
    TIME_PATTERN,
    Page,
    State,
    time_ms,
)

router = APIRouter(tags=["series"])


@router.get("/series")
async def series(
    page: Page,
    state: State,
    q: str | None = Query(None, min_length=1, max_length=256,
                          description="Part of the series id (source|metric), any case."),
    anomalous: bool | None = Query(None, description="An anomaly among the points held."),
) -> dict[str, Any]:
    """Every series scored in the lookback and since, in id order."""
    after = page.after_key(str)
    rows = state.views.series.summaries(q=q, anomalous=anomalous,
                                        after=after[0] if after else None,
                                        limit=page.limit + 1)
    return page.result(rows, ("series_id",))


@router.get("/series/{series_id:path}/points")
async def series_points(
    state: State,
    series_id: str = Path(max_length=600, description="source|metric"),
    since: str | None = Query(None, pattern=TIME_PATTERN, description=TIME_DESCRIPTION),
) -> dict[str, Any]:
    """A series' points held (``DHARMA_API_SERIES_POINTS`` at most), oldest first, and its
    warm-up state.  ``lower``/``upper`` are null: predictions carry no expected band
    (``expected`` is the detector's baseline, null before it has one)."""
    found = state.views.series.detail(series_id, time_ms(since, "since"))
    if found is None:
        raise HTTPException(404, f"no series {series_id!r} in the live view")
    return found
