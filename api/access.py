"""Access to the API: the token, the rate limit, the trust engine's decision, the audit.

Per request, in this order (every failure closes):

1. the bearer token parses, its row exists (PostgreSQL; cached :data:`TOKEN_CACHE_S`),
   its secret matches and it has not expired: else 401, one answer for every cause;
2. one Redis round trip (:class:`~dharma.api.gate.Gate`) counts the request and reads
   the token's standing: revoked is 401 at once, whatever is cached; unknown sends us
   back to PostgreSQL; over ``DHARMA_API_RATE_LIMIT`` per ``DHARMA_API_RATE_WINDOW_S``
   is 429 with ``Retry-After``; Redis away is 503;
3. an ALLOW cached for (token, resource) passes (it was audited when decided);
4. else the trust engine decides resource ``api/v1/...`` (:mod:`~dharma.api.resource`),
   action ``read``, with the policies of ``DHARMA_WORKER_POLICY_DIR`` at the clock of
   now; the decision is appended to the audit trail (``access_audit``, as the trust
   worker does) before anything is answered (PostgreSQL away: 503, never an unaudited
   ALLOW), then published to ``ml.predictions``; CHALLENGE is 401, DENY 403 with the
   reasons; an ALLOW is cached for its ``expires_in`` (bounded by the token's expiry).

Any other exception is DENY, never ALLOW.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from cachetools import TLRUCache, TTLCache
from fastapi import HTTPException, Request

from dharma.agents.trust.behaviour import UserBehaviour
from dharma.agents.trust.config import TrustConfig
from dharma.agents.trust.engine import Decision, TrustEngine, Verdict
from dharma.agents.trust.index import default_policy_dir, load_policy_set
from dharma.agents.trust.models import to_epoch_ms
from dharma.api.decision_feed import DecisionFeed
from dharma.api.gate import Gate, GateUnavailable
from dharma.api.principal import Principal
from dharma.api.resource import API_PREFIX, is_resource, request_resource
from dharma.api.verdict import access_event, answer, peer_address, unauthorized
from dharma.sinks.api_tokens import TokenRow, TokenStore, matches, parse_token
from dharma.sinks.audit import AuditSink, audit_row
from dharma.sinks.base import SinkUnavailable
from dharma.streams.settings import Settings

__all__ = ["TOKEN_CACHE_S", "AccessControl"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: How long a token's row is reused without asking PostgreSQL (revocation does not wait
#: for it: the standing in Redis is read on every request).
TOKEN_CACHE_S = 30.0
#: Store failures that answer 503, and the store each names.
_STORES: dict[type[BaseException], str] = {
    GateUnavailable: "Redis (rate limits, revocations)",
    SinkUnavailable: "the audit trail (PostgreSQL)",
    psycopg.Error: "the token store (PostgreSQL)",
    psycopg_pool.PoolTimeout: "the token store (PostgreSQL)",
    OSError: "a store", TimeoutError: "a store"}
_STORE_ERRORS = tuple(_STORES)


def _unavailable(what: str) -> HTTPException:
    return HTTPException(503, f"access check unavailable: {what} did not answer",
                         headers={"Retry-After": "5"})


def _store_of(exc: BaseException) -> str:
    return next(name for kind, name in _STORES.items() if isinstance(exc, kind))


def route_template(request: Request) -> str:
    """The full path template of the API route ``request`` matched (its path when none).

    ``scope["route"]`` is the route as its router declared it: FastAPI 0.16x includes
    routers lazily, so the ``/api/v1`` prefix :func:`~dharma.api.app.create_app` mounts
    them under is not part of it there (older versions copy routes with it).
    """
    path = getattr(request.scope.get("route"), "path", None)
    if not isinstance(path, str):
        return str(request.scope["path"])
    return path if path.startswith(f"{API_PREFIX}/") else f"{API_PREFIX}{path}"


class AccessControl:
    """The API's policy enforcement point (one per app; connects on first use)."""

    def __init__(self, settings: Settings, engine: TrustEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or TrustEngine(
            load_policy_set(settings.worker.policy_dir or default_policy_dir()),
            TrustConfig.from_settings(settings.trust))
        dsn = settings.postgres.dsn.get_secret_value()
        self.tokens = TokenStore(dsn)
        self.gate = Gate(settings.redis.url.get_secret_value())
        self.audit = AuditSink(dsn, attempts=2, max_backoff_s=0.2, attempt_timeout_s=3.0)
        self.feed = DecisionFeed(settings)
        self._audit_lock = asyncio.Lock()  # the sink holds one connection
        self._rows: TTLCache[str, TokenRow] = TTLCache(maxsize=10_000, ttl=TOKEN_CACHE_S)
        self._allowed: TLRUCache[tuple[str, str], float] = TLRUCache(
            maxsize=50_000, ttu=lambda _key, expiry, _now: expiry, timer=time.monotonic)

    async def authorize(self, request: Request) -> Principal:
        """The principal of ``request``, decided for the resource of its route."""
        token = await self._guarded(self._admit(request))
        path = request.scope["path"]
        template = path if is_resource(path.removeprefix("/")) else route_template(request)
        await self._guarded(self._enforce(request, token, request_resource(path, template)))
        principal = Principal(user_id=token.user_id, roles=token.roles,
                              token_id=token.token_id)
        request.state.principal, request.state.token = principal, token
        return principal

    async def permits(self, request: Request, resource: str) -> bool:
        """Whether the token already admitted for ``request`` may read ``resource`` too
        (decided, audited and cached like a request; False on any failure)."""
        token = getattr(request.state, "token", None)
        if not isinstance(token, TokenRow):
            return False
        try:
            await self._guarded(self._enforce(request, token, resource))
        except HTTPException:
            return False
        return True

    async def _guarded(self, work: Awaitable[T]) -> T:
        """``await work``; a store away is 503, any other failure DENY (403)."""
        try:
            return await work
        except HTTPException:
            raise
        except _STORE_ERRORS as exc:
            logger.warning("api access store away error=%r", exc)
            raise _unavailable(_store_of(exc)) from None
        except Exception as exc:
            logger.exception("api access check failed")
            raise HTTPException(403, {"decision": "DENY", "policy_id": None, "reasons": [
                f"internal error: {type(exc).__name__}"]}) from None

    async def _admit(self, request: Request) -> TokenRow:
        """Steps 1 and 2 of the module docstring."""
        scheme, _, text = request.headers.get("authorization", "").partition(" ")
        parsed = parse_token(text.strip()) if scheme.lower() == "bearer" else None
        if parsed is None:
            raise unauthorized()
        row = self._rows.get(parsed.token_id)
        fresh = row is None
        if fresh:
            row = await self.tokens.lookup(parsed.token_id)
        if row is None or not matches(row, parsed.secret):
            raise unauthorized()
        self._rows[row.token_id] = row
        now = datetime.now(UTC)
        passage = await self.gate.passage(row.token_id, self.settings.api.rate_window_s)
        if passage.standing is None:  # Redis does not know: PostgreSQL does
            row = row if fresh else await self.tokens.lookup(row.token_id)
            usable = row is not None and row.usable_at(now)
            ttl = int((row.expires_at - now).total_seconds()) if row and usable else 0
            await self.gate.record_standing(parsed.token_id, usable, ttl)
        if row is None or passage.standing == "revoked" or not row.usable_at(now):
            self._forget(parsed.token_id)
            raise unauthorized()
        if passage.number > self.settings.api.rate_limit:
            retry = max(1, -(-passage.window_left_ms // 1000))
            raise HTTPException(429, "rate limit exceeded", headers={"Retry-After": str(retry)})
        return row

    def _forget(self, token_id: str) -> None:
        """Drop what is cached of a token that is no longer usable."""
        self._rows.pop(token_id, None)
        for key in [k for k in self._allowed if k[0] == token_id]:
            self._allowed.pop(key, None)

    async def _enforce(self, request: Request, token: TokenRow, resource: str) -> None:
        """Steps 3 and 4: pass a cached ALLOW, else decide, audit, publish, answer."""
        key = (token.token_id, resource)
        if key in self._allowed:
            return
        now = datetime.now(UTC)
        peer = peer_address(request.client.host if request.client else None)
        event = access_event(token, resource, peer, now)
        decision = self.engine.decide(event, UserBehaviour(), now_ms=to_epoch_ms(now))
        await self._record(decision, event)
        refusal = answer(decision)
        if refusal is not None:
            raise refusal
        lifetime = min(decision.expires_in, (token.expires_at - now).total_seconds())
        self._allowed[key] = time.monotonic() + lifetime

    async def _record(self, decision: Decision, event: dict[str, Any]) -> None:
        """Append ``decision`` to the audit trail (503 unless it is committed), then
        publish it."""
        async with self._audit_lock:
            confirmed = await self.audit.append([audit_row(decision.to_record(), event)])
        if decision.decision is Verdict.ALLOW and 0 not in confirmed:
            raise _unavailable("the audit trail (ALLOW not confirmed)")
        await self.feed.publish(decision)

    async def close(self) -> None:
        self.feed.close()
        for store in (self.tokens, self.gate, self.audit):
            await store.close()
