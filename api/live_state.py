"""What the live endpoints share: the feed, its views and hub, lag, and their query
parameters (pages over in-memory views, time filters)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query

from dharma.agents.anomaly.logic import DetectorConfig
from dharma.api.context import ApiContext, context_of
from dharma.api.feed import Feed
from dharma.api.hub import Hub
from dharma.api.lag import LagMonitor
from dharma.api.live_metrics import LiveMetrics
from dharma.api.series_view import SeriesView
from dharma.api.views import AlertsView, LiveViews
from dharma.streams.settings import Settings

__all__ = ["LIVE", "TIME_DESCRIPTION", "TIME_PATTERN", "LivePage", "LiveState", "Page", "State",
           "live_page", "live_state", "open_live", "time_ms"]

#: The key of :class:`LiveState` in the API context's resources.
LIVE = "live"
#: ``since``/``until``: epoch milliseconds, or ISO 8601 with a zone.
TIME_PATTERN = (r"^(\d{1,15}|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
                r"(Z|[+-]\d{2}:?\d{2}))$")
TIME_DESCRIPTION = "Epoch milliseconds, or ISO 8601 with a zone (2026-12-01T18:00:00Z)."


class LiveState:
    """The API process's feed, the views it fills, the hub of live subscribers, lag."""

    def __init__(self, settings: Settings) -> None:
        api = settings.api
        self.settings = settings
        self.metrics = LiveMetrics()
        self.views = LiveViews(AlertsView(api.max_alerts),
                               SeriesView(api.series_points, api.max_series,
                                          DetectorConfig().warmup))
        self.hub = Hub(api.live_buffer, self.metrics)
        self.feed = Feed(settings, self.views, self.hub)
        self.lag = LagMonitor(settings)

    def start(self, loop: asyncio.AbstractEventLoop) -> LiveState:
        """Deliver live events on ``loop``; start reading the topics."""
        self.hub.bind(loop)
        self.feed.start()
        return self

    def close(self) -> None:
        self.feed.stop()
        self.hub.close()


def open_live(context: ApiContext) -> LiveState:
    """Start the live state of the app serving ``context`` (from its lifespan, on its
    loop); closed with the context's other resources."""
    state = LiveState(context.settings).start(asyncio.get_running_loop())
    context.resources[LIVE] = state
    return state


def live_state(context: Annotated[ApiContext, Depends(context_of)]) -> LiveState:
    """The app's :class:`LiveState` (a FastAPI dependency)."""
    state = context.resources.get(LIVE)
    if not isinstance(state, LiveState):
        raise HTTPException(503, "the live feed is not running")
    return state


def time_ms(text: str | None, name: str) -> int | None:
    """Epoch ms of a time filter already matched against :data:`TIME_PATTERN`.

    >>> time_ms("1796148000000", "since"), time_ms("2026-12-01T19:00:00+01:00", "since")
    (1796148000000, 1796148000000)
    """
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise HTTPException(422, f"{name}: {text!r} is not a time ({TIME_DESCRIPTION})") from None


@dataclass(frozen=True)
class LivePage:
    """A page over a view: its size, and the sort key of the last item before it.

    The cursor is the sort key, encoded (URL-safe base64 of JSON); the filters are
    applied again on every page, so a cursor can only say where to continue.
    """

    limit: int
    after: list[Any] | None

    def result(self, items: list[dict[str, Any]], key: tuple[str, ...]) -> dict[str, Any]:
        """``{"items", "next"}`` from up to ``limit + 1`` items; ``key`` names the fields
        of an item's sort key."""
        shown = items[:self.limit]
        cursor = None
        if len(items) > self.limit and shown:
            raw = json.dumps([shown[-1][k] for k in key], separators=(",", ":")).encode()
            cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return {"items": shown, "next": cursor}

    def after_key(self, *types: type) -> tuple[Any, ...] | None:
        """The cursor's sort key, checked against the route's ``types`` (400 otherwise)."""
        if self.after is None:
            return None
        if len(self.after) != len(types) or not all(
                type(v) is t for v, t in zip(self.after, types, strict=False)):
            raise HTTPException(400, "invalid cursor (start again without a cursor)")
        return tuple(self.after)


#: A route's :class:`LiveState` parameter.
State = Annotated[LiveState, Depends(live_state)]


def live_page(state: State,
              limit: int = Query(100, ge=1, description="Items per page (at most "
                                 "DHARMA_API_MAX_PAGE, 500 by default)."),
              cursor: str | None = Query(None, max_length=1024, pattern=r"^[A-Za-z0-9_-]+$",
                                         description="The `next` of the page before.")
              ) -> LivePage:
    """The page a request asks for (a FastAPI dependency)."""
    if limit > state.settings.api.max_page:
        raise HTTPException(422, f"limit: at most {state.settings.api.max_page}")
    if cursor is None:
        return LivePage(limit, None)
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        after = None
    if not isinstance(after, list):
        raise HTTPException(400, "invalid cursor (start again without a cursor)")
    return LivePage(limit, after)


#: A route's page parameter (``limit`` and ``cursor``).
Page = Annotated[LivePage, Depends(live_page)]
