"""Per-request checks in Redis, in one round trip: the token's rate and its standing.

Keys (one Redis, not Cluster: the script computes nothing, but names two keys):

* ``api:rate:{token_id}``: requests in the current fixed window (``INCR``; its
  expiry set when the window opens), so at most ``limit`` requests per window pass;
* ``api:token:{token_id}``: ``ok`` or ``revoked``.  ``dharma api token revoke``
  writes ``revoked`` (plain ``SET``: it always wins); the API writes ``ok`` only
  where the key is missing (``SET NX``), after reading PostgreSQL, for at most
  :data:`STANDING_TTL_S`.  A revocation therefore takes effect on the next request
  of every API process, whatever they cache, and a lost key (Redis restarted
  empty) only sends the API back to PostgreSQL, which knows the revocation too.

Redis away: :class:`GateUnavailable`; the caller answers 503, never unlimited.
"""

from __future__ import annotations

from typing import NamedTuple

import redis.asyncio as redis

from dharma.streams.errors import DharmaError

__all__ = ["STANDING_TTL_S", "Gate", "GateUnavailable", "Passage", "mark_revoked"]

#: How long an ``ok`` standing is trusted before PostgreSQL is asked again.
STANDING_TTL_S = 300
#: How long a ``revoked`` mark is kept at least (PostgreSQL holds it for ever).
REVOKED_TTL_S = 86_400 * 400

#: KEYS: rate key, standing key; ARGV: window (ms).  Returns the count in this window,
#: the window's remaining ms and the standing (false when unknown).
_CHECK = """
local n = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if n == 1 or left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left, redis.call('GET', KEYS[2])}
"""


class GateUnavailable(DharmaError):
    """Redis did not answer: no request may pass unlimited or unchecked."""


class Passage(NamedTuple):
    """One request's answer: its number in the window, the ms left in the window, and
    the token's standing (``ok``, ``revoked``, or None when Redis does not know)."""

    number: int
    window_left_ms: int
    standing: str | None


def _rate_key(token_id: str) -> str:
    return f"api:rate:{token_id}"


def _standing_key(token_id: str) -> str:
    return f"api:token:{token_id}"


class Gate:
    """The rate limit and the revocation marks, over one Redis client."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                           socket_connect_timeout=timeout_s,
                                           decode_responses=True)
        self._check = self._redis.register_script(_CHECK)

    async def passage(self, token_id: str, window_s: int) -> Passage:
        """Count a request of ``token_id`` and read its standing (one round trip)."""
        try:
            count, left, standing = await self._check(
                keys=[_rate_key(token_id), _standing_key(token_id)], args=[window_s * 1000])
        except (redis.RedisError, OSError) as exc:
            raise GateUnavailable(f"redis: {type(exc).__name__}") from exc
        return Passage(int(count), int(left), standing or None)

    async def record_standing(self, token_id: str, usable: bool, ttl_s: int) -> None:
        """Remember what PostgreSQL said: ``ok`` only where nothing is known (a revocation
        written meanwhile wins), ``revoked`` always."""
        try:
            if usable:
                await self._redis.set(_standing_key(token_id), "ok", nx=True,
                                      ex=max(1, min(ttl_s, STANDING_TTL_S)))
            else:
                await self._redis.set(_standing_key(token_id), "revoked", ex=REVOKED_TTL_S)
        except (redis.RedisError, OSError) as exc:
            raise GateUnavailable(f"redis: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self._redis.aclose()


async def mark_revoked(url: str, token_id: str) -> None:
    """Tell every running API that ``token_id`` is revoked (``dharma api token revoke``)."""
    gate = Gate(url)
    try:
        await gate.record_standing(token_id, usable=False, ttl_s=REVOKED_TTL_S)
    finally:
        await gate.close()
