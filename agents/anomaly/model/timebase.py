"""Timestamps and sampling cadence for one series.

A metric stream carries timestamps of several kinds (``datetime``, pandas
``Timestamp``, epoch milliseconds, ISO strings). The detector only needs two
things from them: a wall-clock position in seconds (for time-of-day and
day-of-week phases) and the series' sampling interval (to know whether daily or
weekly seasonality can be resolved). Both are computed here without numpy.
"""

from __future__ import annotations

import math
import sys
from array import array
from datetime import UTC, datetime
from typing import Any

from dharma.agents.anomaly.model.fields import Fields

__all__ = ["Cadence", "to_seconds"]


def to_seconds(ts: object) -> float | None:
    """Wall-clock seconds since the epoch, or ``None`` when there is no usable time.

    Naive datetimes are read as wall-clock time; aware ones are shifted to their own
    wall clock, so that "09:00 local" always falls in the same daily phase. Numbers are
    epoch milliseconds.

    Examples
    --------
    >>> to_seconds(datetime(1970, 1, 2))
    86400.0
    >>> to_seconds(86_400_000)
    86400.0
    >>> to_seconds("1970-01-01T00:01:00") , to_seconds(None), to_seconds(float("nan"))
    (60.0, None, None)
    """
    if ts is None or isinstance(ts, bool):
        return None
    if isinstance(ts, datetime):
        # replace() keeps the wall clock of naive and aware datetimes alike
        return ts.replace(tzinfo=UTC).timestamp()
    if isinstance(ts, int | float):
        sec = float(ts) / 1000.0
        return sec if sec == sec and abs(sec) != float("inf") else None
    if isinstance(ts, str):
        try:
            return to_seconds(datetime.fromisoformat(ts.strip()))
        except ValueError:
            return None
    return None


class Cadence:
    """Running estimate of the sampling interval: median of the last positive gaps; and
    which timestamps are replays.

    Out-of-order timestamps neither move the clock backwards nor enter the estimate.
    The median of a short ring of gaps follows a series whose cadence changes within
    ``size // 2 + 1`` samples, and is immune to a few missing samples.  The last
    ``seen`` learned timestamps are kept to tell a replay (a timestamp already learned,
    or older than all of them: too old to tell, taken as one) from a sample that merely
    arrives out of order, which is new evidence: a single sample dated ahead cannot make
    the series' next genuine samples count as replays.

    Parameters
    ----------
    size
        Number of recent gaps kept.
    seen
        Number of recently learned timestamps kept against replays.

    Examples
    --------
    >>> c = Cadence(seen=4)
    >>> [c.update(t) for t in (0, 60, 120, 120, 90, 180, 300)]
    [True, True, True, False, False, True, True]
    >>> c.interval, c.last
    (60, 300)
    >>> c.replayed(180), c.replayed(240), c.replayed(60), c.replayed(360)  # 60: too old
    (True, False, True, False)
    >>> c.learned(180), c.learned(60)
    (True, False)
    """

    __slots__ = ("_gaps", "_pos", "_seen", "_seen_pos", "_size", "interval", "last")

    def __init__(self, size: int = 15, seen: int = 16) -> None:
        self._gaps: list[float] = []
        self._pos = 0
        self._size = size
        self._seen = array("d", [-math.inf]) * seen  # ring of learned times (-inf: empty)
        self._seen_pos = 0
        self.interval: float | None = None
        self.last: float | None = None

    def to_state(self) -> dict[str, Any]:
        """What the cadence has learned, as plain data (``size`` and ``seen`` are
        configuration)."""
        return {"gaps": self._gaps, "pos": self._pos, "interval": self.interval,
                "last": self.last, "seen": self._seen.tolist(), "seen_pos": self._seen_pos}

    def load_state(self, state: Fields) -> None:
        """Take the learned state of :meth:`to_state`'s output, validated."""
        self._gaps = state.numbers("gaps", self._size, lo=0.0)
        self._pos = state.integer("pos", hi=self._size - 1)
        self.interval = state.opt_number("interval", lo=0.0)
        self.last = state.opt_number("last")
        n = len(self._seen)
        self._seen = array("d", state.numbers("seen", n, min_len=n, hi=sys.float_info.max,
                                              finite=False))
        self._seen_pos = state.integer("seen_pos", hi=n - 1)

    def replayed(self, t: float) -> bool:
        """Whether time ``t`` is a replay: not after the clock, and already learned or
        older than every timestamp kept."""
        if self.last is None or t > self.last:
            return False
        return t in self._seen or t < min(self._seen)

    def learned(self, t: float) -> bool:
        """Whether time ``t`` is one of the last ``seen`` learned timestamps."""
        return t in self._seen

    def update(self, t: float) -> bool:
        """Record the learned time ``t``; ``False`` when it is not after the clock (it
        then neither moves the clock nor enters the estimate)."""
        self._seen[self._seen_pos] = t
        self._seen_pos = (self._seen_pos + 1) % len(self._seen)
        last = self.last
        if last is not None and t <= last:
            return False
        self.last = t
        if last is None:
            return True
        gaps = self._gaps
        if len(gaps) < self._size:
            gaps.append(t - last)
        else:
            gaps[self._pos] = t - last
            self._pos = (self._pos + 1) % self._size
        # the median is re-read every 4th gap once the ring is full: cheap and enough
        if len(gaps) >= 3 and (self._pos % 4 == 0 or len(gaps) < self._size):
            ordered = sorted(gaps)
            self.interval = ordered[len(ordered) // 2]
        return True
