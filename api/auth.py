"""Access to the API, as FastAPI dependencies (the work is :mod:`dharma.api.access`).

Every route under ``/api/v1`` depends on :func:`authorize`; a route that serves more
than its own resource (the live stream's kinds) asks :func:`permits` for each.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from dharma.api.access import AccessControl
from dharma.api.context import context_of
from dharma.api.principal import Principal

__all__ = ["access_of", "authorize", "permits"]


def access_of(request: Request) -> AccessControl:
    """The app's :class:`AccessControl`, made on first use (closed with the app); policies
    that do not load: 503 (every request refused until they do)."""
    resources = context_of(request).resources
    access = resources.get("access")
    if access is None:
        try:
            access = resources["access"] = AccessControl(context_of(request).settings)
        except Exception as exc:
            raise HTTPException(503, f"access check unavailable: {exc}"[:300]) from None
    assert isinstance(access, AccessControl)
    return access


async def authorize(request: Request) -> Principal:
    """The principal of ``request``, decided for resource ``api/<path>``, action
    ``read``: 401 without a valid token or on CHALLENGE, 403 on DENY, 429 over the
    token's rate limit, 503 when a store it needs is away."""
    return await access_of(request).authorize(request)


async def permits(request: Request, resource: str) -> bool:
    """Whether the principal already authorized for ``request`` may also read
    ``resource`` (e.g. ``api/v1/live/decision``): decided and audited like a request."""
    return await access_of(request).permits(request, resource)
