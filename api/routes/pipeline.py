"""``GET /api/v1/pipeline/health`` (lag, rates, dead letters, live subscribers) and
``GET /api/v1/metrics`` (the API process's Prometheus metrics)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dharma.api.live_state import State

router = APIRouter(tags=["pipeline"])


@router.get("/pipeline/health")
async def pipeline_health(state: State) -> dict[str, Any]:
    """Consumer lag per topic, partition and group (``lag_error`` says what the broker
    could not answer); records per second per topic read by the API's feed; dead
    letters by topic, kind and reason; live subscribers and events they lost; the
    feed's own state."""
    lag = await state.lag.snapshot()
    views, feed = state.views, state.feed
    return {
        **lag,
        "rates": views.rates.rows(),
        "dead_letters": views.dead_letters.rows(),
        "live": {"subscribers": state.hub.subscribers, "dropped": state.hub.dropped},
        "feed": {"caught_up": feed.caught_up.is_set(), "undecodable": feed.undecodable,
                 "restarts": feed.restarts,
                 "alerts": len(views.alerts), "series": len(views.series),
                 "evicted": {"alerts": views.alerts.evicted, "series": views.series.evicted}},
    }


@router.get("/metrics", response_class=Response)
async def metrics(state: State) -> Response:
    """The API process's metrics, in Prometheus' text format."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
