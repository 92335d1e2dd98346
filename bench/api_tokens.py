"""API tokens for ``dharma bench api``: one whose decisions get cached, and fresh ones."""

from __future__ import annotations

import secrets

from dharma.streams.settings import Settings

__all__ = ["create_tokens"]


def create_tokens(settings: Settings, fresh: int) -> tuple[str, list[str]]:
    """An ``admin`` token for the cached path and ``fresh`` tokens of new users."""
    return secrets.token_urlsafe(16), [secrets.token_urlsafe(16) for _ in range(fresh)]
