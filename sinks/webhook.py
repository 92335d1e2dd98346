"""An HTTP webhook that runs remediations (StackStorm, Rundeck, AWX or anything alike).

:meth:`Webhook.post` sends one JSON body with an ``Idempotency-Key`` header (the
remediation id: a receiver that honours it runs a retried call once) and the token
when one is set, and returns an :class:`Answer`, never raises: a 2xx answer is a
success; a connection error, a timeout, 408, 425, 429, 502, 503 or 504 is transient
and tried again (tenacity, bounded, exponential backoff); anything else fails at once.

Delivery: the caller claims the remediation id first (:mod:`dharma.sinks.executions`),
so a request is posted by one call at most; that call's own retries are the only
repeats the receiver sees, all with the same idempotency key.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import aiohttp
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from dharma.streams.errors import DharmaError

__all__ = ["TRANSIENT_STATUSES", "Answer", "Webhook"]

logger = logging.getLogger(__name__)

#: HTTP statuses worth a second try: the receiver did not run the job, or says so.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 502, 503, 504})
#: Characters of an error answer's body kept in the reason.
BODY_KEPT = 200


class Answer(NamedTuple):
    """What a call came to: ``ok`` (a 2xx answer) and what happened, in words."""

    ok: bool
    detail: str


class _Transient(DharmaError):
    """A failed try worth another."""


class Webhook:
    """POSTs JSON bodies to ``url``.

    Parameters
    ----------
    url:
        The endpoint (the job template's launch URL, the job's run URL, the webhook).
    token, token_header:
        Credential and the header it goes in: ``Authorization`` gets ``Bearer TOKEN``,
        any other header the bare token.
    timeout_s:
        Longest one try may take.
    attempts, max_backoff_s:
        Tries of a transient failure, and the longest wait between two.
    """

    name = "webhook"

    def __init__(self, url: str | None, token: SecretStr | None = None,
                 token_header: str = "Authorization",  # noqa: S107 - a header's name
                 timeout_s: float = 10.0,
                 attempts: int = 3, max_backoff_s: float = 2.0) -> None:
        self.url, self.token, self.token_header = url, token, token_header
        self.timeout_s, self.attempts, self.max_backoff_s = timeout_s, attempts, max_backoff_s
        self._session: aiohttp.ClientSession | None = None

    def headers(self, idempotency_key: str) -> dict[str, str]:
        """The headers of a call (the token's value included)."""
        out = {"Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
        if self.token is not None:
            secret = self.token.get_secret_value()
            bearer = self.token_header.lower() == "authorization"
            out[self.token_header] = f"Bearer {secret}" if bearer else secret
        return out

    async def post(self, body: dict[str, Any], idempotency_key: str) -> Answer:
        """POST ``body``; what it came to (transient failures tried ``attempts`` times)."""
        if self.url is None:
            return Answer(False, "refused: no webhook configured (DHARMA_EXECUTOR_URL)")
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.2, max=self.max_backoff_s), reraise=False)
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._try(self.url, body, idempotency_key)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            return Answer(False, f"{last} (after {self.attempts} attempts)")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _try(self, url: str, body: dict[str, Any], key: str) -> Answer:
        session = await self._client()
        try:
            async with session.post(url, json=body, headers=self.headers(key)) as resp:
                text = (await resp.text(errors="replace"))[:BODY_KEPT]
                detail = f"webhook answered {resp.status} {resp.reason or ''}".rstrip()
                if 200 <= resp.status < 300:
                    return Answer(True, detail)
                if resp.status in TRANSIENT_STATUSES:
                    raise _Transient(detail)
                return Answer(False, f"{detail}: {text}" if text else detail)
        except (TimeoutError, aiohttp.ClientError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else repr(exc)
            raise _Transient(f"webhook call failed: {kind}") from exc

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
