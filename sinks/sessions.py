"""Redis store of live zero-trust sessions (``redis.asyncio``; a batch opens in one script).

Delivery: at-least-once, idempotent.  Keys:

* ``session:{id}``: JSON ``{"status": "active"|"challenged", "session": Session}``,
  TTL ``ttl_s`` (the ALLOW's ``expires_in``, 900 s by default), refreshed when
  the same ALLOW is stored again;
* ``sessions:user:{user_id}`` and ``sessions:device:{device_id}``: sets of
  session ids, so a posture or risk event finds the sessions it touches; their
  TTL is pushed to ``ttl_s`` on every open (ids of expired sessions are skipped
  on lookup and dropped when a session is ended);
* ``session:{id}:revoked``: a tombstone (TTL ``ttl_s``) so a replayed ALLOW
  cannot reopen a revoked session.

Every operation is retried a bounded number of times (tenacity) and then
raises :class:`~dharma.sinks.base.SinkUnavailable`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
import redis.asyncio as redis
from tenacity import AsyncRetrying, RetryError, stop_after_attempt, wait_exponential

from dharma.agents.trust.session import Session
from dharma.sinks.base import BatchSink, SinkUnavailable

__all__ = ["SessionStore"]

T = TypeVar("T")


#: Open (or refresh) sessions in one round trip and one reply, skipping revoked ones.
#: ARGV[1]: the TTL; ARGV[2]: a JSON list of [session id, user id, device id, value].
#: Keys are computed here, so this needs one Redis (not Cluster).  Returns how many opened.
_OPEN = """
local ttl = tonumber(ARGV[1])
local opened = 0
for _, s in ipairs(cjson.decode(ARGV[2])) do
  local key = 'session:' .. s[1]
  if redis.call('EXISTS', key .. ':revoked') == 0 then
    redis.call('SET', key, s[4], 'EX', ttl)
    for _, index in ipairs({'sessions:user:' .. s[2], 'sessions:device:' .. s[3]}) do
      redis.call('SADD', index, s[1])
      redis.call('EXPIRE', index, ttl)
    end
    opened = opened + 1
  end
end
return opened
"""


def _key(session_id: str) -> str:
    return f"session:{session_id}"


class SessionStore(BatchSink[Session]):
    """Live sessions in Redis; :meth:`flush` opens (or refreshes) sessions.

    Parameters
    ----------
    url
        Redis URL (may hold a password).
    ttl_s
        Lifetime of a session and of its index entries.
    """

    def __init__(self, url: str, ttl_s: int = 900, **kwargs: Any) -> None:
        super().__init__(name="redis.sessions", **kwargs)
        self._url = url
        self.ttl_s = ttl_s
        self._client: redis.Redis | None = None

    async def setup(self) -> None:
        await self.close()
        self._client = redis.Redis.from_url(self._url)
        await self._client.ping()
        self._open = self._client.register_script(_OPEN)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def write(self, batch: Sequence[Session]) -> int:
        assert self._client is not None
        if not batch:
            return 0
        sessions = [(s.session_id, s.user_id, s.device_id,
                     orjson.dumps({"status": "active", "session": s.to_dict()}).decode())
                    for s in batch]
        return int(await self._open(args=[self.ttl_s, orjson.dumps(sessions)]))

    async def touching(self, user_id: str, device_id: str) -> list[tuple[Session, str]]:
        """Live sessions of ``user_id`` or on ``device_id``, with their status."""
        async def op(client: redis.Redis) -> list[tuple[Session, str]]:
            found = await client.sunion([f"sessions:user:{user_id}",
                                         f"sessions:device:{device_id}"])
            ids = sorted(i.decode() if isinstance(i, bytes) else i for i in found)
            values = await client.mget([_key(i) for i in ids]) if ids else []
            out = []
            for raw in values:
                if raw is not None:
                    doc = json.loads(raw)
                    out.append((Session.from_dict(doc["session"]), doc["status"]))
            return out

        return await self._retry(op)

    async def end(self, revoked: Sequence[Session], challenged: Sequence[Session]) -> None:
        """Delete revoked sessions (leaving a tombstone); mark challenged ones."""
        async def op(client: redis.Redis) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for s in revoked:
                    pipe.delete(_key(s.session_id))
                    pipe.set(f"{_key(s.session_id)}:revoked", "1", ex=self.ttl_s)
                    pipe.srem(f"sessions:user:{s.user_id}", s.session_id)
                    pipe.srem(f"sessions:device:{s.device_id}", s.session_id)
                for s in challenged:
                    value = json.dumps({"status": "challenged", "session": s.to_dict()})
                    pipe.set(_key(s.session_id), value, keepttl=True, xx=True)
                await pipe.execute()

        if revoked or challenged:
            await self._retry(op)

    async def _retry(self, op: Callable[[redis.Redis], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(stop=stop_after_attempt(self.attempts),
                                 wait=wait_exponential(multiplier=0.1, max=self.max_backoff_s))
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        if self._client is None:
                            await self.setup()
                        assert self._client is not None
                        return await op(self._client)
                    except Exception:
                        await self.close()
                        raise
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise SinkUnavailable(f"{self.name}: {cause!r}") from cause
        raise AssertionError("unreachable")  # pragma: no cover
