"""API tokens for ``dharma bench api``: one whose decisions get cached, and fresh ones."""

from __future__ import annotations

import secrets

from dharma.streams.settings import Settings

__all__ = ["admin_token", "fresh_tokens"]


def admin_token(settings: Settings) -> str:
    """An ``admin`` token (with MFA) for the cached path."""
    return secrets.token_urlsafe(16)


def fresh_tokens(settings: Settings, n: int) -> list[str]:
    """``n`` ``admin`` tokens (with MFA), each of a user of its own."""
    return [secrets.token_urlsafe(16) for _ in range(n)]
