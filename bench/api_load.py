"""Latency of the API's endpoints under a concurrent client (``dharma bench api``).

One ``httpx`` async client with ``concurrency`` connections sends each endpoint's
requests (``concurrency`` in flight) and times each from send to the last byte of
its body.  Paths cycle through a fixed set per endpoint (e.g. 100 series ids), so
the warm-up covers every resource the cached run asks for.

- **cached**: one token whose ALLOW is cached for every resource asked (the warm-up
  asked each once): the normal case of a page polling the API;
- **uncached**: a new token for every request, its row looked up (and cached) by an
  untimed request to another resource first, so each timed request is the token's
  first for its resource: the trust decision and the audit write;
- **floor**: ``/api/health`` (no token, no store) on the same server and client.

Cached rounds rotate the endpoints' order, the floor taking its turn among them.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["HEALTH", "Endpoint", "Timings", "measure_endpoints", "percentiles"]

HEALTH = "/api/health"


@dataclass(frozen=True)
class Endpoint:
    """An endpoint timed: its label and the paths its requests cycle through."""

    name: str
    paths: tuple[str, ...]


@dataclass
class Timings:
    """Milliseconds per request and the statuses answered, over one endpoint's runs."""

    ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    def figures(self, name: str) -> dict[str, Any]:
        """One row of the report: requests, requests/s, percentiles, non-2xx answers."""
        errors = {str(s): n for s, n in sorted(self.statuses.items()) if not 200 <= s < 300}
        return {"endpoint": name, "requests": len(self.ms),
                "per_s": round(len(self.ms) / self.seconds) if self.seconds else None,
                **percentiles(self.ms), "errors": errors or None}


def percentiles(ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p99, max and mean of ``ms``, rounded to 0.1 ms.

    >>> percentiles([float(i) for i in range(1, 101)])
    {'p50_ms': 50.5, 'p99_ms': 99.0, 'max_ms': 100.0, 'mean_ms': 50.5}
    >>> percentiles([])
    {'p50_ms': None, 'p99_ms': None, 'max_ms': None, 'mean_ms': None}
    """
    if not ms:
        return dict.fromkeys(("p50_ms", "p99_ms", "max_ms", "mean_ms"))
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {"p50_ms": round(cuts[49], 1), "p99_ms": round(cuts[98], 1),
            "max_ms": round(max(ms), 1), "mean_ms": round(statistics.fmean(ms), 1)}


async def _time(client: httpx.AsyncClient, requests: Iterable[tuple[str, str | None]],
                concurrency: int, into: Timings) -> None:
    """Send ``(path, token)`` requests, ``concurrency`` at a time; time each into ``into``."""
    pending = iter(requests)  # shared by the senders: each takes the next request

    async def sender() -> None:
        for path, token in pending:
            headers = {"authorization": f"Bearer {token}"} if token else None
            started = time.perf_counter()
            response = await client.get(path, headers=headers)
            into.ms.append((time.perf_counter() - started) * 1000)
            into.statuses[response.status_code] += 1

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    into.seconds += time.perf_counter() - started


def _cycle(endpoint: Endpoint, n: int, token: str | None) -> list[tuple[str, str | None]]:
    return [(path, token) for path in itertools.islice(itertools.cycle(endpoint.paths), n)]


async def _measure(base_url: str, token: str, endpoints: Sequence[Endpoint], requests: int,
                   rounds: int, concurrency: int, fresh_tokens: Sequence[str]
                   ) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    floor = Endpoint(HEALTH, (HEALTH,))
    cached = {e.name: Timings() for e in (floor, *endpoints)}
    uncached = {e.name: Timings() for e in endpoints}
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        warm = Timings()
        for endpoint in (floor, *endpoints):  # every resource once, then the client warm
            await _time(client, _cycle(endpoint, max(len(endpoint.paths), requests // 10),
                                       token if endpoint is not floor else None),
                        concurrency, warm)
        timed = [floor, *endpoints]
        for r in range(rounds):
            for endpoint in timed[r % len(timed):] + timed[:r % len(timed)]:
                await _time(client, _cycle(endpoint, requests,
                                           token if endpoint is not floor else None),
                            concurrency, cached[endpoint.name])
        per_endpoint = len(fresh_tokens) // max(len(endpoints), 1)
        for i, endpoint in enumerate(endpoints):
            tokens = fresh_tokens[i * per_endpoint:(i + 1) * per_endpoint]
            # each token's row is looked up (and cached) on another resource first: the
            # timed request pays the trust decision and the audit write, not the lookup
            primer = endpoints[i - 1].paths[0]
            await _time(client, [(primer, t) for t in tokens], concurrency, warm)
            await _time(client, list(zip(itertools.cycle(endpoint.paths), tokens,
                                         strict=False)), concurrency, uncached[endpoint.name])
    return {"warmup_errors": {str(s): n for s, n in warm.statuses.items()
                              if not 200 <= s < 300} or None,
            "cached": [t.figures(name) for name, t in cached.items()],
            "uncached": [t.figures(name) for name, t in uncached.items()]}


def measure_endpoints(base_url: str, token: str, endpoints: Sequence[Endpoint],
                      requests: int, rounds: int, concurrency: int = 4,
                      fresh_tokens: Sequence[str] = ()) -> dict[str, Any]:
    """Per endpoint, p50/p99 of ``rounds`` times ``requests`` cached requests with ``token``
    (and of the floor, ``/api/health``), then of uncached requests: each of
    ``fresh_tokens`` used for one timed request (split evenly over the endpoints)."""
    return asyncio.run(_measure(base_url, token, endpoints, requests, rounds, concurrency,
                                fresh_tokens))
