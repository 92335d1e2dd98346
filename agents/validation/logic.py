"""Pure logic of the validation agent: per-series rolling statistics.

The statistics are what later detectors read: count, EWMA mean and variance,
last value and last timestamp.  A sample not newer than the last one seen for
its series (a replay after a restart, or out of order) does not move them, so
redelivery never double counts.

>>> s = SeriesStats.empty()
>>> for i, v in enumerate([10.0, 12.0, 11.0]):
...     s = s.update(v, ts=1000 * (i + 1), alpha=0.5)
>>> (s.count, round(s.mean, 3), s.last_value, s.last_ts)
(3, 11.0, 11.0, 3000)
>>> s.update(99.0, ts=2000, alpha=0.5).count  # older than last_ts: ignored
3
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter

#: Default EWMA smoothing: an effective memory of about 2/alpha - 1 = 39 samples.
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class SeriesStats:
    """Rolling statistics of one series (``source|metric``).

    Read back from a table they are validated (:meth:`from_dict`): finite numbers,
    counts and variance not negative, ``last_ts`` -1 (nothing seen yet) or later.
    """

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid", allow_inf_nan=False)

    count: Annotated[int, Field(ge=0)]
    mean: float
    var: Annotated[float, Field(ge=0)]
    last_value: float
    last_ts: Annotated[int, Field(ge=-1)]
    skipped: Annotated[int, Field(ge=0)] = 0

    @classmethod
    def empty(cls) -> SeriesStats:
        return cls(count=0, mean=0.0, var=0.0, last_value=0.0, last_ts=-1)

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    def update(self, value: float, ts: int, alpha: float = DEFAULT_ALPHA) -> SeriesStats:
        """Statistics after ``value`` at ``ts``; unchanged (but counted) if not newer."""
        if ts <= self.last_ts:
            return replace(self, skipped=self.skipped + 1)
        if self.count == 0:
            return SeriesStats(1, value, 0.0, value, ts, self.skipped)
        diff = value - self.mean
        incr = alpha * diff
        mean = self.mean + incr
        var = (1.0 - alpha) * (self.var + diff * incr)
        return SeriesStats(self.count + 1, mean, var, value, ts, self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> SeriesStats:
        """Inverse of :meth:`to_dict`, validated (``None`` or empty: :meth:`empty`)."""
        return STATS_ADAPTER.validate_python(raw) if raw else cls.empty()


#: Validates stored statistics.
STATS_ADAPTER: TypeAdapter[SeriesStats] = TypeAdapter(SeriesStats)


def fold(stats: SeriesStats, samples: Iterable[tuple[float, int]],
         alpha: float = DEFAULT_ALPHA) -> SeriesStats:
    """Apply ``(value, ts)`` samples in order."""
    for value, ts in samples:
        stats = stats.update(value, ts, alpha)
    return stats


R = TypeVar("R")


def fold_batch(stats_of: Callable[[str], SeriesStats],
               samples: Iterable[tuple[R, str, float, int]],
               alpha: float = DEFAULT_ALPHA) -> list[tuple[str, SeriesStats, R]]:
    """The validation capability's batch step: ``(ref, series, value, ts)`` samples in log
    order folded into each series' statistics (``stats_of``); the series whose statistics
    changed, each once, with its new statistics and its last sample's ``ref``.

    >>> changed = fold_batch(lambda s: SeriesStats.empty(),
    ...                      [("e1", "web|cpu", 1.0, 10), ("e2", "web|cpu", 3.0, 20)], 0.5)
    >>> [(series, stats.count, stats.mean, ref) for series, stats, ref in changed]
    [('web|cpu', 2, 2.0, 'e2')]
    """
    by_series: dict[str, list[tuple[R, float, int]]] = {}
    for ref, series, value, ts in samples:
        by_series.setdefault(series, []).append((ref, value, ts))
    changed = []
    for series, items in by_series.items():
        before = stats_of(series)
        after = fold(before, ((value, ts) for _, value, ts in items), alpha)
        if after != before:
            changed.append((series, after, items[-1][0]))
    return changed
