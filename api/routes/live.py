"""``GET /api/v1/live``: Server-Sent Events of alerts, incidents, remediations,
decisions and predictions, filtered server side.

Each event is ``event: <kind>``, ``id: <topic>:<partition>:<offset>``, ``data: <JSON
record>``; a comment (``: heartbeat``) comes every 15 s without events.  Each kind
asked for is decided as resource ``api/v1/live/<kind>``: a kind asked for by name and
denied is a 403; without ``kinds``, the stream carries the kinds permitted.

A stream is admitted again every :data:`READMIT_S` seconds, as a request would be: a
token revoked or expired since (or a store that cannot say) ends it; a client whose
other requests hit the rate limit keeps its stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from dharma.api.auth import authorize, permits
from dharma.api.hub import KINDS, Hub, LiveFilter
from dharma.api.live_state import State

router = APIRouter(tags=["live"])

HEARTBEAT_S = 15.0
#: How often an open stream is admitted again (revocation, expiry).
READMIT_S = 15.0
_KIND = "(alert|incident|remediation|decision|prediction)"
_SEVERITY = "(info|warning|critical)"


async def _permitted(request: Request, kinds: str | None) -> frozenset[str]:
    asked = tuple(dict.fromkeys(kinds.split(","))) if kinds else KINDS
    allowed = [kind for kind in asked if await permits(request, f"api/v1/live/{kind}")]
    denied = sorted(set(asked) - set(allowed))
    if (kinds and denied) or not allowed:
        raise HTTPException(403, f"not permitted: live {', '.join(denied)}")
    return frozenset(allowed)


async def _until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _still_admitted(request: Request) -> bool:
    """Whether the stream's token would still be admitted (a 429 does not end it)."""
    try:
        await authorize(request)
    except HTTPException as exc:
        return exc.status_code == 429
    return True


async def _events(request: Request, hub: Hub, live_filter: LiveFilter) -> AsyncIterator[bytes]:
    subscription = hub.subscribe(live_filter)
    gone = asyncio.create_task(_until_disconnected(request))
    gone.add_done_callback(lambda _: subscription.wake())  # leave now, not at a heartbeat
    loop = asyncio.get_running_loop()
    readmit_at = loop.time() + READMIT_S
    try:
        yield b": subscribed\n\n"  # the headers and this go out at once
        while subscription.active and not gone.done():
            batch = await subscription.next_batch(min(HEARTBEAT_S, READMIT_S))
            if loop.time() >= readmit_at:
                if not await _still_admitted(request):
                    yield b": access ended\n\n"
                    return
                readmit_at = loop.time() + READMIT_S
            if batch:
                yield b"".join(event.frame for event in batch)
            elif not gone.done():
                yield b": heartbeat\n\n"
    finally:
        subscription.close()
        gone.cancel()


@router.get("/live", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def live(
    request: Request,
    state: State,
    kinds: str | None = Query(None, pattern=f"^{_KIND}(,{_KIND}){{0,4}}$",
                              description="Kinds, separated by commas (default: every kind "
                              "permitted)."),
    severity: str | None = Query(None, pattern=f"^{_SEVERITY}(,{_SEVERITY}){{0,2}}$",
                                 description="Only events with one of these severities."),
    resource: str | None = Query(None, min_length=1, max_length=256,
                                 description="Only events about this resource."),
    user: str | None = Query(None, min_length=1, max_length=256,
                             description="Only events of this user (decisions)."),
) -> StreamingResponse:
    """Events from now on (``DHARMA_API_LIVE_BUFFER`` held per subscriber: a reader
    slower than the events loses the oldest, counted in ``dharma_api_live_dropped_total``)."""
    live_filter = LiveFilter(await _permitted(request, kinds),
                             frozenset(severity.split(",")) if severity else None,
                             resource, user)
    return StreamingResponse(_events(request, state.hub, live_filter),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
