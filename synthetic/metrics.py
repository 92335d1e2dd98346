"""Baseline telemetry: daily seasonality, per-metric noise, load along dependencies.

Traffic enters at the web tier and is fanned out to the app tier and to the
shared db, cache and queue, so load is correlated along the dependency edges.
Every series draws the same number of random numbers every tick, so injected
incidents (applied afterwards, see :mod:`.incidents`) never shift the noise of
other series.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from dharma.synthetic.estate import Resource
from dharma.synthetic.model import DAY_MS, poisson

UNITS: dict[str, str | None] = {
    "cpu_utilization": "percent",
    "memory_utilization": "percent",
    "request_latency_ms": "ms",
    "requests_per_second": "req/s",
    "disk_utilization": "percent",
    "queue_depth": "messages",
    "cache_hit_ratio": None,
}

METRICS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "web": ("cpu_utilization", "memory_utilization", "request_latency_ms", "requests_per_second"),
    "app": ("cpu_utilization", "memory_utilization", "request_latency_ms", "requests_per_second"),
    "db": ("cpu_utilization", "memory_utilization", "request_latency_ms", "disk_utilization"),
    "cache": ("cpu_utilization", "memory_utilization", "cache_hit_ratio"),
    "queue": ("cpu_utilization", "queue_depth", "disk_utilization"),
}

Series = tuple[str, str]  # (source, metric)


def season(ts: int, day_length_ms: int = DAY_MS, peak_phase: float = 0.6) -> float:
    """Relative traffic in [0.3, 1.0]: trough at night, peak at ``peak_phase`` of the day."""
    phase = (ts % day_length_ms) / day_length_ms
    return 0.3 + 0.35 * (1.0 + math.cos(2 * math.pi * (phase - peak_phase)))


def clip(x: float, lo: float, hi: float) -> float:
    """``x`` limited to ``[lo, hi]``."""
    return min(hi, max(lo, x))


@dataclass
class _Static:
    """Per-resource constants drawn once: memory level, disk level, latency base."""

    mem: float
    disk: float
    latency: float


class BaselineModel:
    """Noise-and-seasonality model of every series of the estate.

    Parameters
    ----------
    resources
        The estate, dependency targets first (as :func:`build_estate` returns it).
    rng
        Random stream used only for metric noise.
    day_length_ms
        Length of a simulated day; set it short for demos so seasonality shows.
    peak_rps
        Total requests per second at the daily peak.
    """

    def __init__(
        self,
        resources: list[Resource],
        rng: random.Random,
        day_length_ms: int = DAY_MS,
        peak_rps: float = 600.0,
    ) -> None:
        self.resources = resources
        self.rng = rng
        self.day_length_ms = day_length_ms
        self.peak_rps = peak_rps
        self.count = {t: sum(r.asset_type == t for r in resources) for t in METRICS_BY_TYPE}
        self.static = {
            r.resource_id: _Static(
                rng.uniform(38, 58), rng.uniform(35, 60), rng.uniform(0.85, 1.15)
            )
            for r in resources
        }
        self.drift = 0.0
        self._db_latency = 5.0
        self._app_latency = 60.0

    def series(self) -> list[tuple[Resource, str]]:
        """Every (resource, metric) pair, in emission order."""
        return [(r, m) for r in self.resources for m in METRICS_BY_TYPE[r.asset_type]]

    def load(self, ts: int) -> float:
        """Estate-wide relative load: seasonality times a slow AR(1) drift (advances it)."""
        self.drift = 0.97 * self.drift + self.rng.gauss(0.0, 0.004)
        return season(ts, self.day_length_ms) * math.exp(self.drift)

    def step(self, ts: int) -> dict[Series, float]:
        """One sample of every series at ``ts``."""
        load = self.load(ts)
        out: dict[Series, float] = {}
        for r in self.resources:
            values = _GENERATORS[r.asset_type](self, r, load)
            for metric, value in zip(METRICS_BY_TYPE[r.asset_type], values, strict=True):
                out[(r.resource_id, metric)] = round(value, 3)
        return out

    # -- per asset type: return values in METRICS_BY_TYPE order -------------
    def _cpu(self, base: float, span: float, load: float, sd: float) -> float:
        return clip(base + span * load + self.rng.gauss(0.0, sd), 0.5, 99.5)

    def _mem(self, r: Resource, load: float, span: float, sd: float) -> float:
        return clip(self.static[r.resource_id].mem + span * load + self.rng.gauss(0.0, sd), 1, 99)

    def _latency(self, r: Resource, expected: float, sd: float) -> float:
        return expected * self.static[r.resource_id].latency * self.rng.lognormvariate(0.0, sd)

    def _tier_load(self, kind: str, share: float, load: float) -> tuple[float, float]:
        """(requests/s, relative load) of one server of a tier."""
        rps = self.peak_rps * share * load / self.count[kind] * (1 + self.rng.gauss(0.0, 0.03))
        return max(rps, 0.0), rps / (self.peak_rps * share / self.count[kind])

    def _db(self, r: Resource, load: float) -> tuple[float, ...]:
        self._db_latency = 4.0 * (1 + 1.5 * load**2)
        return (
            self._cpu(12, 50, load, 2.0),
            self._mem(r, load, 3, 0.5),
            self._latency(r, self._db_latency, 0.10),
            clip(self.static[r.resource_id].disk + self.rng.gauss(0.0, 0.15), 0, 100),
        )

    def _cache(self, r: Resource, load: float) -> tuple[float, ...]:
        hit = clip(0.94 - 0.04 * load + self.rng.gauss(0.0, 0.006), 0.0, 1.0)
        return self._cpu(5, 25, load, 1.5), self._mem(r, load, 2, 0.5), hit

    def _queue(self, r: Resource, load: float) -> tuple[float, ...]:
        depth = float(poisson(self.rng, 15 + 60 * load))
        disk = clip(self.static[r.resource_id].disk * 0.6 + self.rng.gauss(0.0, 0.15), 0, 100)
        return self._cpu(6, 30, load, 1.5), depth, disk

    def _app(self, r: Resource, load: float) -> tuple[float, ...]:
        rps, rel = self._tier_load("app", 1.5, load)
        self._app_latency = 35 * (1 + rel**2) + 3 * self._db_latency
        return (
            self._cpu(10, 55, rel, 2.0),
            self._mem(r, rel, 6, 0.7),
            self._latency(r, self._app_latency, 0.08),
            rps,
        )

    def _web(self, r: Resource, load: float) -> tuple[float, ...]:
        rps, rel = self._tier_load("web", 1.0, load)
        expected = 20 * (1 + 0.8 * rel**2) + self._app_latency
        return (
            self._cpu(8, 60, rel, 2.0),
            self._mem(r, rel, 6, 0.7),
            self._latency(r, expected, 0.07),
            rps,
        )


_GENERATORS: dict[str, Callable[[BaselineModel, Resource, float], tuple[float, ...]]] = {
    "db": BaselineModel._db,
    "cache": BaselineModel._cache,
    "queue": BaselineModel._queue,
    "app": BaselineModel._app,
    "web": BaselineModel._web,
}
