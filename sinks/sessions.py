"""Redis store of live zero-trust sessions (``redis.asyncio``; a batch opens in one script).

Delivery: at-least-once, idempotent, and a session opens at most once.  Keys:

* ``session:{id}``: JSON ``{"status": "active"|"challenged", "session": Session}``,
  TTL ``ttl_s`` (the ALLOW's ``expires_in``, 900 s by default), never extended;
* ``session:{id}:opened`` and ``session:{id}:revoked``: markers kept for
  ``guard_s`` (at least session lifetime + clock skew), so that a replayed
  ALLOW, redelivered or re-sent by anyone, cannot open its session again once
  it was revoked or has expired: by the time the markers go, the request is
  older than a session lifetime and the engine opens no session for it;
* ``sessions:by-user:{user_id}`` and ``sessions:by-device:{device_id}``: sorted
  sets of session ids scored by their expiry (Redis clock, ms), so a posture or
  risk event finds the sessions it touches; each open drops the expired ids of
  the sets it adds to and pushes their TTL to ``ttl_s``, so a set holds about
  the live sessions of its user or device, however long the user stays active;
* ``sessions:posture:{user_id}/{device_id}``: the best posture (component by
  component) recorded by that user's live sessions on that device, TTL
  ``ttl_s``, so a request reporting a worse posture is noticed without reading
  the sessions (:meth:`SessionStore.open` reports such pairs).

Every operation is retried a bounded number of times (tenacity) and then
raises :class:`~dharma.sinks.base.SinkUnavailable`.  The memory these keys take
is bounded by the rate of ALLOWs times ``guard_s``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple, Protocol, TypeVar

import orjson
import redis.asyncio as redis

from dharma.sinks.base import BatchSink

__all__ = ["Opened", "Posture", "SessionRow", "SessionStore"]

#: A device posture: numbers compared component by component, each larger = better.
Posture = tuple[float, ...]


class SessionRow(Protocol):
    """What the store needs of a session: its ids and a JSON-ready form (the
    capability's session type; the store decodes what it reads back with the
    ``decode`` it is given)."""

    @property
    def session_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def device_id(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=SessionRow)


#: Open sessions in one round trip, each at most once (never again once revoked or
#: expired: see the module docstring), keep each (user, device) pair's best posture,
#: name the pairs a request of this batch reports a worse posture for, and the sessions
#: refused as ``revoked`` or ``expired`` (one opened before and still live is neither:
#: a redelivery of its ALLOW).
#: ARGV: the TTL, the guard, a JSON list of [session id, user id, device id, value,
#: posture key, posture], a JSON list of [posture key, worst posture of the batch];
#: postures are ``|``-joined numbers (:func:`_text`), parsed only when they differ.
#: Keys are computed here, so this needs one Redis (not Cluster).
_OPEN = """
local ttl, guard = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local opened, best, indexes, stored, refused = 0, {}, {}, {}, {}
local function parse(p)
  local t = {}
  for x in string.gmatch(p, '[^|]+') do t[#t + 1] = tonumber(x) end
  return t
end
local function recorded(key)
  local v = stored[key]
  if v == nil then v = redis.call('GET', key) or false; stored[key] = v end
  return best[key] or v
end
local function merge(a, b)
  if not a or a == b then return b end
  local x, y = parse(a), parse(b)
  for i = 1, #y do if x[i] > y[i] then y[i] = x[i] end end
  return table.concat(y, '|')
end
for _, s in ipairs(cjson.decode(ARGV[3])) do
  local key = 'session:' .. s[1]
  if redis.call('EXISTS', key .. ':revoked') == 1 then
    table.insert(refused, {s[1], 'revoked'})
  elseif not redis.call('SET', key .. ':opened', '1', 'NX', 'EX', guard) then
    if redis.call('EXISTS', key) == 0 then table.insert(refused, {s[1], 'expired'}) end
  else
    redis.call('SET', key, s[4], 'EX', ttl)
    for _, index in ipairs({'sessions:by-user:' .. s[2], 'sessions:by-device:' .. s[3]}) do
      redis.call('ZADD', index, now + ttl * 1000, s[1])
      indexes[index] = true
    end
    if s[6] ~= '' then best[s[5]] = merge(recorded(s[5]), s[6]) end
    opened = opened + 1
  end
end
for index in pairs(indexes) do
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  redis.call('EXPIRE', index, ttl)
end
for key, p in pairs(best) do redis.call('SET', key, p, 'EX', ttl) end
local worse = {}
for _, r in ipairs(cjson.decode(ARGV[4])) do
  local p = recorded(r[1])
  if p and p ~= r[2] then
    local mine, theirs = parse(r[2]), parse(p)
    for i = 1, #theirs do
      if mine[i] < theirs[i] then table.insert(worse, r[1]); break end
    end
  end
end
return {opened, worse, refused}
"""

Pair = tuple[str, str]


class Opened(NamedTuple):
    """What :meth:`SessionStore.open` did."""

    opened: int
    #: (user, device) pairs a request of the batch reported a worse posture for
    worse: set[Pair]
    #: session id -> ``revoked`` or ``expired``: sessions that will not open again
    refused: dict[str, str]


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _key(session_id: str) -> str:
    return f"session:{session_id}"


@lru_cache(maxsize=4096)
def _text(posture: Posture) -> str:
    """A posture as the script stores it: its numbers as Lua prints them (``%.14g``), so
    equal postures are equal strings (``95|1|1|0|10``)."""
    return "|".join(format(x, ".14g") for x in posture)


def _posture_key(pair: Pair) -> str:
    return f"sessions:posture:{pair[0]}/{pair[1]}"  # ids never hold '/'


class SessionStore(BatchSink[S]):
    """Live sessions in Redis; :meth:`open` opens a batch's sessions.

    Parameters
    ----------
    url
        Redis URL (may hold a password).
    decode
        Builds a session back from its stored ``to_dict()`` form, validating it
        (it comes back from Redis); a failure fails the read like an outage.
    ttl_s
        Lifetime of a session and of its index entries.
    guard_s
        How long opened and revoked sessions are remembered (against replays).
    """

    def __init__(self, url: str, decode: Callable[[dict[str, Any]], S], ttl_s: int = 900,
                 guard_s: int = 930, **kwargs: Any) -> None:
        super().__init__(name="redis.sessions", **kwargs)
        self._url, self._decode = url, decode
        self.ttl_s, self.guard_s = ttl_s, guard_s
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

    async def write(self, batch: Sequence[S]) -> int:
        opened = await self._open_batch([(s, ()) for s in batch], {})
        return opened.opened

    async def open(self, sessions: Sequence[tuple[S, Posture]],
                   requested: Mapping[Pair, Posture]) -> Opened:
        """Open ``sessions`` (each with its device's posture) and compare ``requested`` (the
        worst posture a (user, device) pair reported in the batch) with the best one that
        pair's live sessions recorded: how many opened, the pairs reporting worse, and
        the sessions refused as revoked or expired."""
        if not sessions and not requested:
            return Opened(0, set(), {})
        return await self.call(lambda: self._open_batch(sessions, requested))

    async def _open_batch(self, sessions: Sequence[tuple[S, Posture]],
                          requested: Mapping[Pair, Posture]) -> Opened:
        pairs = {_posture_key(pair): pair for pair in requested}
        args = [(s.session_id, s.user_id, s.device_id,
                 orjson.dumps({"status": "active", "session": s.to_dict()}).decode(),
                 _posture_key((s.user_id, s.device_id)), _text(posture))
                for s, posture in sessions]
        opened, worse, refused = await self._open(args=[
            self.ttl_s, self.guard_s, orjson.dumps(args),
            orjson.dumps([(key, _text(requested[pair])) for key, pair in pairs.items()])])
        return Opened(int(opened), {pairs[_str(k)] for k in worse},
                      {_str(sid): _str(status) for sid, status in refused})

    async def touching(self, user_id: str, device_id: str) -> list[tuple[S, str]]:
        """Live sessions of ``user_id`` or on ``device_id``, with their status."""
        async def op() -> list[tuple[S, str]]:
            assert self._client is not None
            client = self._client
            async with client.pipeline(transaction=False) as pipe:
                pipe.zrange(f"sessions:by-user:{user_id}", 0, -1)
                pipe.zrange(f"sessions:by-device:{device_id}", 0, -1)
                by_user, by_device = await pipe.execute()
            ids = sorted({i.decode() if isinstance(i, bytes) else i
                          for i in (*by_user, *by_device)})
            values = await client.mget([_key(i) for i in ids]) if ids else []
            out = []
            for raw in values:
                if raw is not None:
                    doc = json.loads(raw)
                    out.append((self._decode(doc["session"]), doc["status"]))
            return out

        return await self.call(op)

    async def end(self, revoked: Sequence[S], challenged: Sequence[S]) -> None:
        """Delete revoked sessions (leaving a tombstone for ``guard_s``); mark challenged ones."""
        async def op() -> None:
            assert self._client is not None
            async with self._client.pipeline(transaction=False) as pipe:
                for s in revoked:
                    pipe.delete(_key(s.session_id))
                    pipe.set(f"{_key(s.session_id)}:revoked", "1", ex=self.guard_s)
                    pipe.zrem(f"sessions:by-user:{s.user_id}", s.session_id)
                    pipe.zrem(f"sessions:by-device:{s.device_id}", s.session_id)
                for s in challenged:
                    value = json.dumps({"status": "challenged", "session": s.to_dict()})
                    pipe.set(_key(s.session_id), value, keepttl=True, xx=True)
                await pipe.execute()

        if revoked or challenged:
            await self.call(op)
