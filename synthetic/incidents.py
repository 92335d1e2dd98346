"""Incident catalogue: which resources and metrics each category hits, and how.

An incident is an overlay on the baseline: it rewrites only the (source, metric)
pairs its label names, and only for ``onset_ms <= ts < end_ms``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dharma.synthetic.metrics import Series, clip
from dharma.synthetic.model import Label

Effect = Callable[[str, float, float, float], float]  # (metric, value, progress, magnitude)


def _memory_leak(metric: str, v: float, progress: float, mag: float) -> float:
    return clip(v + mag * progress, 0, 99.5)


def _cpu_spike(metric: str, v: float, progress: float, mag: float) -> float:
    level = min(1.0, progress * 8)  # reaches the plateau within the first eighth
    if metric == "cpu_utilization":
        return clip(v + mag * level, 0, 99.5)
    return v * (1 + level * mag / 40)  # latency suffers from CPU saturation


def _latency_shift(metric: str, v: float, progress: float, mag: float) -> float:
    return v * mag


def _disk_filling(metric: str, v: float, progress: float, mag: float) -> float:
    return clip(v + (mag - v) * progress, 0, 100)


def _traffic_drop(metric: str, v: float, progress: float, mag: float) -> float:
    if metric == "requests_per_second":
        return v * (1 - mag)
    return v * (1 - 0.7 * mag)  # cpu follows the traffic


@dataclass(frozen=True)
class Category:
    """One incident category of the catalogue.

    Parameters
    ----------
    name
        Category written on labels and incident events.
    metrics
        Affected metrics per eligible asset type.
    duration
        Duration range in ticks (clipped to a sixth of a simulated day).
    magnitude
        Range of the effect's strength (meaning depends on the effect).
    severity, title, remediation
        Written on incident and remediation events.
    """

    name: str
    metrics: dict[str, tuple[str, ...]]
    duration: tuple[int, int]
    magnitude: tuple[float, float]
    effect: Effect
    severity: str
    title: str
    remediation: str

    def affected(self, asset_type: str) -> tuple[str, ...]:
        """Metrics hit on an asset of ``asset_type`` (empty when not eligible)."""
        return self.metrics.get(asset_type, ())


_LAT = ("cpu_utilization", "request_latency_ms")
CATALOGUE: dict[str, Category] = {
    c.name: c
    for c in (
        Category(
            "memory_leak",
            {"web": ("memory_utilization",), "app": ("memory_utilization",)},
            (60, 180),
            (35.0, 50.0),
            _memory_leak,
            "critical",
            "Memory leak: memory_utilization ramping",
            "restart_service",
        ),
        Category(
            "cpu_spike",
            {
                "web": _LAT,
                "app": _LAT,
                "db": _LAT,
                "cache": ("cpu_utilization",),
                "queue": ("cpu_utilization",),
            },
            (6, 30),
            (35.0, 55.0),
            _cpu_spike,
            "warning",
            "CPU spike: cpu_utilization saturated",
            "scale_out",
        ),
        Category(
            "latency_shift",
            {t: ("request_latency_ms",) for t in ("web", "app", "db")},
            (12, 60),
            (2.0, 3.5),
            _latency_shift,
            "warning",
            "Latency shift: request_latency_ms up",
            "rollback",
        ),
        Category(
            "disk_filling",
            {"db": ("disk_utilization",), "queue": ("disk_utilization",)},
            (60, 240),
            (93.0, 99.0),
            _disk_filling,
            "critical",
            "Disk filling: disk_utilization climbing",
            "cleanup_disk",
        ),
        Category(
            "traffic_drop",
            {"web": ("requests_per_second", "cpu_utilization")},
            (12, 48),
            (0.55, 0.8),
            _traffic_drop,
            "critical",
            "Traffic drop: requests_per_second collapsed",
            "restart_service",
        ),
    )
}

#: chaos fault -> category whose effect it produces
CHAOS_FAULTS: dict[str, str] = {"latency": "latency_shift", "cpu_hog": "cpu_spike"}


@dataclass
class ActiveIncident:
    """An incident (or chaos experiment) in flight, with its ground-truth label."""

    label: Label
    category: Category
    magnitude: float
    start_tick: int
    end_tick: int  # exclusive
    #: Where the effect reaches its plateau (None: at ``end_tick``); an incident that
    #: waits for its remediation stays at the plateau from there.
    plateau_tick: int | None = None

    def active(self, tick: int) -> bool:
        """Whether the incident affects samples at ``tick``."""
        return self.start_tick <= tick < self.end_tick

    def apply(self, values: dict[Series, float], tick: int) -> None:
        """Rewrite the labelled series of ``values`` in place for ``tick``."""
        if not self.active(tick):
            return
        span = (self.plateau_tick or self.end_tick) - self.start_tick
        progress = min(1.0, (tick - self.start_tick + 1) / span)
        for metric in self.label.metrics:
            key = (self.label.source, metric)
            if key in values:
                value = self.category.effect(metric, values[key], progress, self.magnitude)
                values[key] = round(value, 3)
