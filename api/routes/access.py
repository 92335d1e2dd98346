"""``/api/v1/access``: who the request's token stands for (the page shows it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

__all__ = ["router"]

router = APIRouter(tags=["access"])


@router.get("/access/me")
async def me(request: Request) -> dict[str, Any]:
    """The token's holder: user, roles, whether it was issued with MFA, when it expires
    (ISO 8601); never its secret."""
    token = request.state.token
    return {"user_id": token.user_id, "roles": list(token.roles), "token_id": token.token_id,
            "mfa": token.mfa, "expires_at": token.expires_at.isoformat()}
