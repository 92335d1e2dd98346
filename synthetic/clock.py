"""Mapping a wall-clock run (events per second for some seconds) onto ticks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dharma.synthetic.model import DAY_MS
from dharma.synthetic.source import SyntheticSource


@dataclass(frozen=True)
class RunPlan:
    """How many ticks to produce and where they sit in simulated time.

    The last tick is at ``end_ms`` (e.g. "now"), so no timestamp lies in the future.
    Pass ``start_ms``, ``sample_interval_ms`` and ``day_length_ms`` to
    :class:`SyntheticSource`; produce ``ticks`` ticks, ``ticks_per_second`` per
    wall-clock second.
    """

    ticks: int
    start_ms: int
    sample_interval_ms: int
    day_length_ms: int
    ticks_per_second: float

    @property
    def compression(self) -> float:
        """Simulated milliseconds per wall-clock millisecond."""
        return self.sample_interval_ms * self.ticks_per_second / 1000


def plan_run(
    rate: float,
    duration_s: float,
    end_ms: int,
    events_per_tick: float,
    *,
    sample_interval_ms: int = 10_000,
    days: float | None = 1.0,
) -> RunPlan:
    """Plan a run of about ``rate`` emissions/s for ``duration_s`` wall-clock seconds.

    Parameters
    ----------
    rate, duration_s
        Wall-clock emissions per second and run length.
    end_ms
        Timestamp of the last tick (usually now).
    events_per_tick
        From :meth:`SyntheticSource.events_per_tick`.
    sample_interval_ms
        Simulated time between ticks.
    days
        How many simulated days the run should span: the day is shortened to
        ``ticks * sample_interval_ms / days`` so seasonality shows. ``None``
        keeps a real 24 h day.

    Examples
    --------
    >>> p = plan_run(100, 60, end_ms=1_700_000_000_000, events_per_tick=40)
    >>> p.ticks, p.day_length_ms, p.start_ms + (p.ticks - 1) * p.sample_interval_ms
    (150, 1500000, 1700000000000)
    """
    if rate <= 0 or duration_s <= 0 or events_per_tick <= 0:
        raise ValueError("rate, duration_s and events_per_tick must be positive")
    ticks = max(2, math.ceil(rate * duration_s / events_per_tick))
    span = ticks * sample_interval_ms
    day = DAY_MS if days is None else max(sample_interval_ms, round(span / days))
    start = end_ms - (ticks - 1) * sample_interval_ms
    return RunPlan(ticks, start, sample_interval_ms, day, ticks / duration_s)


def plan_source(
    seed: int,
    rate: float,
    duration_s: float,
    end_ms: int,
    *,
    sample_interval_ms: int = 10_000,
    days: float | None = 1.0,
    **kwargs: Any,
) -> tuple[SyntheticSource, RunPlan]:
    """A source and its plan for a wall-clock run ending at ``end_ms``.

    ``kwargs`` go to :class:`SyntheticSource` (``estate``, ``incidents``, ``access``,
    ``bad_fraction``, ...); ``day_length_ms`` comes from the plan.

    Examples
    --------
    >>> src, plan = plan_source(7, rate=50, duration_s=20, end_ms=1_700_000_000_000)
    >>> batches = list(src.ticks(plan.ticks))
    >>> max(e.value["ts"] for b in batches for e in b)
    1700000000000
    """
    probe = SyntheticSource(seed, end_ms, sample_interval_ms, **kwargs)
    plan = plan_run(
        rate,
        duration_s,
        end_ms,
        probe.events_per_tick(),
        sample_interval_ms=sample_interval_ms,
        days=days,
    )
    source = SyntheticSource(
        seed, plan.start_ms, sample_interval_ms, day_length_ms=plan.day_length_ms, **kwargs
    )
    return source, plan
