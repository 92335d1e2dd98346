"""API tokens in PostgreSQL: who holds them, with which roles, until when.

A token reads ``dhk_<token_id>_<secret>``: ``token_id`` (16 hex digits) names the
row, ``secret`` (``secrets.token_urlsafe(32)``: 256 random bits) proves the holder.
The secret is shown once, when the token is created, and never stored: the table
keeps its SHA-256.  A fast, unsalted hash is enough here because the secret is 256
bits drawn at random, not a password: nothing about it can be guessed or looked up
in a dictionary, so a slow hash (bcrypt, argon2) would add latency to every lookup
and no protection.  Presented secrets are compared with :func:`hmac.compare_digest`.

``api_tokens``: ``token_id`` (key), ``secret_sha256``, ``user_id``, ``roles``,
``mfa`` (the holder authenticated with MFA when it was issued), ``created_at``,
``expires_at`` (every token expires), ``revoked_at`` (set once, never cleared).
The command line writes through the synchronous functions; the API reads through
:class:`TokenStore` (async, a small pool).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from dharma.streams.errors import DharmaError

__all__ = [
    "InvalidToken",
    "IssuedToken",
    "TokenRow",
    "TokenStore",
    "create_token",
    "list_tokens",
    "matches",
    "mint",
    "parse_token",
    "revoke_token",
    "secret_digest",
]

DDL = """
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id text PRIMARY KEY,
    secret_sha256 text NOT NULL,
    user_id text NOT NULL,
    roles text[] NOT NULL,
    mfa boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
)
"""

_ALL = ("SELECT token_id, secret_sha256, user_id, roles, mfa, created_at, expires_at, "
        "revoked_at FROM api_tokens ORDER BY created_at DESC")
_ONE = ("SELECT token_id, secret_sha256, user_id, roles, mfa, created_at, expires_at, "
        "revoked_at FROM api_tokens WHERE token_id = %s")
_INSERT = ("INSERT INTO api_tokens (token_id, secret_sha256, user_id, roles, mfa, created_at, "
           "expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING token_id, secret_sha256, "
           "user_id, roles, mfa, created_at, expires_at, revoked_at")

#: A token as presented: ``dhk_``, the id, ``_``, the secret (43 URL-safe characters).
_TOKEN = re.compile(r"dhk_([0-9a-f]{16})_([A-Za-z0-9_\-]{43})")
#: Who may hold a token, and the roles it may carry (the trust engine's identifiers).
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@\-]{0,127}")
_ROLE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,63}")
#: The longest a token may live.
MAX_TTL = timedelta(days=3650)
#: What a presented secret is compared with when its id is unknown (same work, no oracle).
_NO_DIGEST = hashlib.sha256(b"no such token").hexdigest()


class InvalidToken(DharmaError):
    """A token that cannot be issued as asked (bad user, role or lifetime)."""


class ParsedToken(NamedTuple):
    """A presented token, split: the row's id and the secret to check."""

    token_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A stored token (its secret's digest, never the secret)."""

    token_id: str
    secret_sha256: str
    user_id: str
    roles: tuple[str, ...]
    mfa: bool
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def usable_at(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created: ``token`` is the only copy of its secret."""

    token: str
    row: TokenRow


def secret_digest(secret: str) -> str:
    """SHA-256 of a token's secret, hex (see the module docstring for why SHA-256).

    >>> secret_digest("x" * 43)[:12]
    'cc0b1c2c66f3'
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def mint() -> tuple[str, str, str]:
    """A fresh token: ``(token, token_id, secret)``."""
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    return f"dhk_{token_id}_{secret}", token_id, secret


def parse_token(text: str) -> ParsedToken | None:
    """The id and secret of a presented token; None for anything else.

    >>> parse_token("dhk_0123456789abcdef_" + "A" * 43).token_id
    '0123456789abcdef'
    >>> parse_token("dhk_0123456789abcdef_short") is None
    True
    """
    found = _TOKEN.fullmatch(text) if len(text) < 100 else None
    return None if found is None else ParsedToken(found[1], found[2])


def matches(row: TokenRow | None, secret: str) -> bool:
    """Whether ``secret`` is the secret of ``row`` (constant-time; the same work when
    there is no row, so timing does not tell unknown ids from wrong secrets)."""
    stored = row.secret_sha256 if row is not None else _NO_DIGEST
    return hmac.compare_digest(secret_digest(secret), stored) and row is not None


def _checked(user_id: str, roles: Sequence[str], ttl: timedelta) -> tuple[str, ...]:
    if not _USER.fullmatch(user_id):
        raise InvalidToken(f"user {user_id!r}: letters, digits and _.:@- only (at most 128)")
    bad = [r for r in roles if not _ROLE.fullmatch(r)]
    if bad or not roles or len(roles) > 64:
        raise InvalidToken(f"roles {list(roles)!r}: 1 to 64 names of letters, digits, _.:-")
    if not timedelta(0) < ttl <= MAX_TTL:
        raise InvalidToken(f"lifetime {ttl}: more than nothing, at most {MAX_TTL.days} days")
    return tuple(dict.fromkeys(roles))


def _row(values: dict[str, Any]) -> TokenRow:
    return TokenRow(**{**values, "roles": tuple(values["roles"])})


def _connect(dsn: str) -> psycopg.Connection[dict[str, Any]]:
    conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
    conn.execute(DDL)
    return conn


def create_token(dsn: str, user_id: str, roles: Sequence[str], *, mfa: bool,
                 ttl: timedelta) -> IssuedToken:
    """Issue a token to ``user_id`` with ``roles`` for ``ttl``; the only copy of it."""
    clean = _checked(user_id, roles, ttl)
    token, token_id, secret = mint()
    now = datetime.now(UTC)
    with _connect(dsn) as conn:
        row = conn.execute(_INSERT, (token_id, secret_digest(secret), user_id, list(clean),
                                     mfa, now, now + ttl)).fetchone()
    assert row is not None
    return IssuedToken(token, _row(row))


def list_tokens(dsn: str) -> list[TokenRow]:
    """Every token, newest first."""
    with _connect(dsn) as conn:
        return [_row(r) for r in conn.execute(_ALL)]


def revoke_token(dsn: str, token_id: str) -> TokenRow | None:
    """Revoke a token (a second revocation keeps the first time); the row, None if unknown."""
    with _connect(dsn) as conn:
        conn.execute("UPDATE api_tokens SET revoked_at = now() "
                     "WHERE token_id = %s AND revoked_at IS NULL", (token_id,))
        row = conn.execute(_ONE, (token_id,)).fetchone()
    return None if row is None else _row(row)


class TokenStore:
    """The API's side: look tokens up (async, a small pool that replaces broken
    connections; PostgreSQL away: ``psycopg.OperationalError`` or ``PoolTimeout``)."""

    name = "postgres.api_tokens"

    def __init__(self, dsn: str, max_size: int = 4, timeout_s: float = 3.0) -> None:
        self._timeout = timeout_s
        self._pool = AsyncConnectionPool(dsn, min_size=1, max_size=max_size, open=False,
                                         timeout=timeout_s,
                                         check=AsyncConnectionPool.check_connection,
                                         kwargs={"autocommit": True})
        self._opened = False
        # the first requests arrive together (a page's, live subscribers'): one opens the
        # pool, the others wait (psycopg_pool breaks on concurrent opens)
        self._opening = asyncio.Lock()

    async def _ready(self) -> None:
        if self._opened:
            return
        async with self._opening:
            if not self._opened:
                await self._pool.open(wait=True, timeout=self._timeout)
                async with self._pool.connection() as conn:
                    await conn.execute(DDL)
                self._opened = True

    async def lookup(self, token_id: str) -> TokenRow | None:
        """The stored token ``token_id``, None when there is none."""
        await self._ready()
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_ONE, (token_id,))
            row = await cur.fetchone()
        return None if row is None else _row(row)

    async def close(self) -> None:
        await self._pool.close()
