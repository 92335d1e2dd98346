"""Access to the API: the token, the trust engine's decision, the rate limit.

PLACEHOLDER until the access slice lands: any bearer token is accepted and every
resource permitted.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from dharma.api.principal import Principal

__all__ = ["authorize", "permits"]


async def authorize(request: Request) -> Principal:
    """The principal of ``request``, decided for resource ``api/<path>``, action
    ``read``: 401 without a valid token or on CHALLENGE, 403 on DENY, 429 over the
    token's rate limit."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "a bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = Principal(user_id="anonymous", roles=(), token_id="")
    request.state.principal = principal
    return principal


async def permits(request: Request, resource: str) -> bool:
    """Whether the principal already authorized for ``request`` may also read
    ``resource`` (e.g. ``api/v1/live/decision``): decided and audited like a request."""
    return True
