"""API tokens for ``dharma bench api``, issued as ``dharma api token create`` issues them:
one whose decisions get cached, and fresh ones, each of a user of its own."""

from __future__ import annotations

from datetime import timedelta

from dharma.sinks.api_tokens import create_token
from dharma.streams.settings import Settings

__all__ = ["admin_token", "fresh_tokens"]

#: Long enough for any run; short enough to be harmless if a stack outlives it.
TTL = timedelta(days=1)


def admin_token(settings: Settings, user: str = "bench-admin") -> str:
    """An ``admin`` token with MFA (what ``dharma up`` and the page use)."""
    return create_token(settings.postgres.dsn.get_secret_value(), user, ["admin"], mfa=True,
                        ttl=TTL).token


def fresh_tokens(settings: Settings, n: int, prefix: str = "bench-user") -> list[str]:
    """``n`` ``admin`` tokens with MFA, each of a user of its own."""
    return [admin_token(settings, f"{prefix}-{i}") for i in range(n)]
