"""Access to the API: the token, the trust engine's decision, the rate limit.

PLACEHOLDER until the access slice lands: any bearer token is accepted.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from dharma.api.principal import Principal

__all__ = ["authorize"]


async def authorize(request: Request) -> Principal:
    """The principal of ``request``; 401 without a bearer token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "a bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = Principal(user_id="anonymous", roles=(), token_id="")
    request.state.principal = principal
    return principal
