"""Asset churn over simulated weeks: the estate created, non-production copies that
come and go, resizes that change the price, and assets whose price is unknown.

What cost accrual is tested and benchmarked on: every lifecycle step of
``infrastructure.events`` (``created``, ``updated`` with a new size or price,
``retired``), at any millisecond.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

from dharma.synthetic.estate import EstateConfig, Resource, build_estate, infra_event
from dharma.synthetic.model import HOUR_MS, Emission, derive_rng

__all__ = ["ChurnConfig", "churn_events"]

#: Resizes within a family: instance type → (larger type, its hourly price).
RESIZES: dict[str, tuple[str, float]] = {
    "t3.medium": ("t3.large", 0.0832),
    "m5.large": ("m5.xlarge", 0.192),
    "r5.xlarge": ("r5.2xlarge", 0.504),
    "cache.r6g.large": ("cache.r6g.xlarge", 0.411),
}


@dataclass(frozen=True)
class ChurnConfig:
    """How much changes per simulated day.

    Parameters
    ----------
    copies_per_day
        Expected non-production copies (staging, dev) created per day; each lives
        between an hour and a few days, some never retire.
    resizes_per_day
        Expected resizes (price changes) of live assets per day.
    unpriced_share
        Share of copies created without a known price.
    """

    copies_per_day: float = 1.5
    resizes_per_day: float = 0.5
    unpriced_share: float = 0.1


def _attributes(r: Resource, action: str, cost: float | None) -> dict[str, object]:
    return {"action": action, "asset_type": r.asset_type, "name": r.resource_id,
            "provider": r.provider, "region": r.region, "team": r.team, "env": r.env,
            "instance_type": r.instance_type, "hourly_cost": cost}


def churn_events(seed: int, start_ms: int, end_ms: int, estate: EstateConfig | None = None,
                 config: ChurnConfig | None = None) -> Iterator[Emission]:
    """Lifecycle events of an estate over ``[start_ms, end_ms)``, in time order: the
    estate created at ``start_ms``, then copies and resizes at random milliseconds.

    >>> events = list(churn_events(7, 0, 30 * 86_400_000))
    >>> sorted({e.value["attributes"]["action"] for e in events})
    ['created', 'retired', 'updated']
    >>> all(a.value["ts"] <= b.value["ts"] for a, b in zip(events, events[1:]))
    True
    """
    rng = derive_rng(seed, "churn")
    config = config or ChurnConfig()
    resources = build_estate(estate or EstateConfig())
    plan: list[tuple[int, Resource, str, float | None]] = [
        (start_ms, r, "created", r.hourly_cost) for r in resources]
    days = (end_ms - start_ms) / (24 * HOUR_MS)
    for n in range(_count(rng, config.copies_per_day * days)):
        plan += _copy(rng, rng.choice(resources), n, start_ms, end_ms, config.unpriced_share)
    live = {r.resource_id: r for r in resources}
    for _ in range(_count(rng, config.resizes_per_day * days)):
        r = live[rng.choice(sorted(live))]
        if r.instance_type in RESIZES:
            bigger, price = RESIZES[r.instance_type]
            live[r.resource_id] = resized = replace(r, instance_type=bigger, hourly_cost=price)
            plan.append((rng.randrange(start_ms + 1, end_ms), resized, "updated", price))
    plan.sort(key=lambda p: p[0])
    for ts, r, action, cost in plan:
        yield infra_event(rng, ts, "asset", r.resource_id, _attributes(r, action, cost))


def _count(rng: random.Random, mean: float) -> int:
    return max(1, round(rng.gauss(mean, mean ** 0.5)))


def _copy(rng: random.Random, base: Resource, n: int, start_ms: int, end_ms: int,
          unpriced_share: float) -> list[tuple[int, Resource, str, float | None]]:
    env = rng.choice(("staging", "dev"))
    copy = replace(base, resource_id=f"{base.resource_id}-{env}-{n:03d}", env=env)
    born = rng.randrange(start_ms, end_ms)
    cost = None if rng.random() < unpriced_share else base.hourly_cost
    steps: list[tuple[int, Resource, str, float | None]] = [(born, copy, "created", cost)]
    life = rng.randrange(HOUR_MS, 4 * 24 * HOUR_MS)
    if rng.random() < 0.8 and born + life < end_ms:
        steps.append((born + life, copy, "retired", cost))
    return steps
