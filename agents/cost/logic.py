"""Cost accrual in event time (pure): an asset's lifecycle events → rate segments → the
cost of any window.

An asset accrues its ``hourly_cost`` from its ``created`` event's ``ts`` until its
``retired`` event's ``ts``, prorated to the millisecond.  An ``updated`` event changes
the rate (and what the cost is rolled up by) from its ``ts``: to the ``hourly_cost`` it
carries, or, without one, to the rate in force while the ``instance_type`` stays the
same, and to no known price when the type changed without a price.  Time without a
known price is *unpriced*: counted in hours, never costed as $0.

Segments are a function of the *set* of events, whatever order they arrived in: the
events are ordered by ``(ts, action, event_id)`` first, so a late or out-of-order event
gives exactly the segments (and totals) of the same events in order.  An ``updated``
event of an asset that is not live at its ``ts`` changes nothing (no life to reprice),
and a second ``created`` while live acts as an update.

>>> p = Placement("web-01", "web", "frontend", "prod", "aws", "us-east-1", "t3.medium")
>>> events = [Lifecycle("e2", "web-01", 5_400_000, "retired", p, None),
...           Lifecycle("e1", "web-01", 1_800_000, "created", p, 0.5)]
>>> accrue(segments(events), 0, 7_200_000)
Accrual(cost=0.5, priced_ms=3600000, unpriced_ms=0, placement=Placement(...))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from dharma.streams.records import month_start, next_month

__all__ = ["DAY_MS", "HOUR_MS", "Accrual", "Lifecycle", "Placement", "Segment", "WindowCost",
           "accrue", "merge", "rate_at", "segments", "service_of", "window_costs", "windows"]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

Action = Literal["created", "updated", "retired"]
Granularity = Literal["hour", "day", "month"]

#: Events at the same instant apply in this order: a create, then its updates, then a retire.
_ACTION_ORDER = {"created": 0, "updated": 1, "retired": 2}


@dataclass(frozen=True, slots=True)
class Placement:
    """What an asset's cost is rolled up by while a segment lasts."""

    name: str
    asset_type: str
    team: str
    env: str
    provider: str
    region: str
    instance_type: str | None

    def __repr__(self) -> str:  # doctests show Accruals without the whole placement
        return "Placement(...)"


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """One ``asset`` event of ``infrastructure.events``: its step and what it says."""

    event_id: str
    resource_id: str
    ts: int
    action: Action
    placement: Placement
    hourly_cost: float | None

    @property
    def order(self) -> tuple[int, int, str]:
        return (self.ts, _ACTION_ORDER[self.action], self.event_id)


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of life at one rate (``None``: no known price); ``end`` None while live."""

    start: int
    end: int | None
    rate: float | None
    placement: Placement

    def overlap(self, start: int, end: int) -> int:
        """Milliseconds of this segment within ``[start, end)``."""
        stop = end if self.end is None else min(end, self.end)
        return max(0, stop - max(start, self.start))


@dataclass(frozen=True, slots=True)
class Accrual:
    """The cost of one asset over a window: priced and unpriced time, and the placement in
    force at the end of its life in the window (None: not alive in it)."""

    cost: float
    priced_ms: int
    unpriced_ms: int
    placement: Placement | None

    @property
    def alive(self) -> bool:
        return self.priced_ms + self.unpriced_ms > 0

    @property
    def unpriced_hours(self) -> float:
        return self.unpriced_ms / HOUR_MS


@dataclass(frozen=True, slots=True)
class WindowCost:
    """One tumbling window of one asset: ``cost`` None when no part of it was priced."""

    start: int
    end: int
    granularity: Granularity
    cost: float | None
    unpriced_hours: float
    placement: Placement


def merge(known: Iterable[Lifecycle], new: Iterable[Lifecycle]) -> tuple[Lifecycle, ...]:
    """``known`` with the events of ``new`` whose ids it lacks, in application order (the
    first event stored under an id is kept: a replay adds nothing)."""
    by_id = {e.event_id: e for e in known}
    for event in new:
        by_id.setdefault(event.event_id, event)
    return tuple(sorted(by_id.values(), key=lambda e: e.order))


def segments(events: Iterable[Lifecycle]) -> list[Segment]:
    """The rate segments of an asset's lifecycle events (any order, duplicates ignored)."""
    out: list[Segment] = []
    live: Segment | None = None
    for event in merge((), events):
        if event.action == "retired" or (event.action == "updated" and live is None):
            if live is not None:
                out.append(_closed(live, event.ts))
            live = None
            continue
        rate = event.hourly_cost
        if rate is None and live is not None \
                and live.placement.instance_type == event.placement.instance_type:
            rate = live.rate
        if live is not None:
            out.append(_closed(live, event.ts))
        live = Segment(event.ts, None, rate, event.placement)
    if live is not None:
        out.append(live)
    return [s for s in out if s.end is None or s.end > s.start]


def _closed(segment: Segment, end: int) -> Segment:
    return Segment(segment.start, end, segment.rate, segment.placement)


def accrue(segs: Iterable[Segment], start: int, end: int) -> Accrual:
    """The cost of ``segs`` over ``[start, end)`` (ms), prorated to the millisecond."""
    cost, priced, unpriced, placement = 0.0, 0, 0, None
    for seg in segs:
        ms = seg.overlap(start, end)
        if ms <= 0:
            continue
        placement = seg.placement
        if seg.rate is None:
            unpriced += ms
        else:
            priced += ms
            cost += seg.rate * ms / HOUR_MS
    return Accrual(cost, priced, unpriced, placement)


def windows(granularity: Granularity, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The tumbling UTC windows of ``granularity`` that overlap ``[start, end)``.

    >>> list(windows("hour", 1_800_000, 7_200_001))
    [(0, 3600000), (3600000, 7200000), (7200000, 10800000)]
    """
    if granularity == "month":
        lo = month_start(start)
        while lo < end:
            hi = next_month(lo)
            yield lo, hi
            lo = hi
        return
    size = HOUR_MS if granularity == "hour" else DAY_MS
    lo = start - start % size
    while lo < end:
        yield lo, lo + size
        lo += size


def window_costs(segs: list[Segment], granularity: Granularity, start: int, end: int,
                 until: int) -> list[WindowCost]:
    """The windows of ``granularity`` overlapping ``[start, end)`` in which the asset was
    alive, each costed up to ``until`` (ms: time after it has not been accrued yet)."""
    out = []
    for lo, hi in windows(granularity, start, end):
        acc = accrue(segs, lo, min(hi, until))
        if acc.placement is None:
            continue
        cost = acc.cost if acc.priced_ms else None
        out.append(WindowCost(lo, hi, granularity, cost, acc.unpriced_hours, acc.placement))
    return out


#: The provider's name for the service an asset type runs on (FOCUS ServiceName); other
#: assets are named by their type.
SERVICES: dict[tuple[str, str], str] = {
    ("aws", "web"): "Amazon Elastic Compute Cloud", ("aws", "app"): "Amazon Elastic Compute Cloud",
    ("aws", "queue"): "Amazon Elastic Compute Cloud",
    ("aws", "db"): "Amazon Relational Database Service", ("aws", "cache"): "Amazon ElastiCache",
    ("aws", "lb"): "Elastic Load Balancing",
    ("gcp", "web"): "Compute Engine", ("gcp", "app"): "Compute Engine",
    ("gcp", "queue"): "Compute Engine", ("gcp", "db"): "Cloud SQL",
    ("gcp", "cache"): "Memorystore", ("azure", "web"): "Virtual Machines",
    ("azure", "app"): "Virtual Machines", ("azure", "queue"): "Virtual Machines",
    ("azure", "db"): "Azure Database", ("azure", "cache"): "Azure Cache for Redis",
}


def service_of(placement: Placement) -> str:
    """FOCUS ``ServiceName`` of an asset.

    >>> service_of(Placement("db-01", "db", "data", "prod", "aws", "us-east-1", None))
    'Amazon Relational Database Service'
    """
    return SERVICES.get((placement.provider, placement.asset_type), placement.asset_type)


def rate_at(segs: list[Segment], ts: int) -> float | None:
    """The rate in force at ``ts`` (or, after the asset's life, at its end)."""
    for seg in reversed(segs):
        if seg.start <= ts:
            return seg.rate
    return None
