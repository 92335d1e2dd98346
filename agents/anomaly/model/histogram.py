"""Value-distribution novelty: how rare is the (deseasonalised) value lately?

The baseline's residual says whether a value is where the series was expected
to be *now*; it misses an anomaly that the fast correction has already
followed: a series that goes flat at a level it only ever crossed, a new
texture whose values fill a band the series rarely visits, a small sustained
shift. This channel looks at the value alone, CAD-OSE/histogram style: the
seen range is cut into ``bins`` equal bins, each with an exponentially decayed
count (memory ``memory`` samples), and a value's surprise is how much rarer its
bin is than a uniform one. The detector feeds it the value minus the learned
daily/weekly term, so a daily edge that crosses rare levels is not novel.

Decay is lazy: new counts are added with a growing weight, renormalised now
and then, so learning costs O(1) instead of O(bins).
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from dharma.agents.anomaly.model.fields import Fields, f32_bytes

__all__ = ["ValueHistogram"]

#: Weight at which the counts are renormalised (keeps float32 counts accurate).
_RESCALE = 1e6


class ValueHistogram:
    """Exponentially decayed histogram of values over their seen range ``[lo, hi]``.

    Parameters
    ----------
    bins
        Number of equal-width bins over the seen range.
    memory
        Samples after which a count has decayed by ``1/e``.

    Examples
    --------
    >>> h = ValueHistogram(bins=10)
    >>> for i in range(1000):
    ...     h.learn(float(i % 2))  # a two-level series
    >>> h.surprise(0.5), h.surprise(1.0)
    (1.0, 0.0)
    """

    __slots__ = ("bins", "counts", "decay", "hi", "lo", "total", "weight")

    def __init__(self, bins: int = 32, memory: int = 2000) -> None:
        self.bins = bins
        self.decay = 1.0 - 1.0 / memory
        self.counts = array("f", [0.0]) * bins
        self.total = 0.0  # sum of counts, in the current weight's units
        self.weight = 1.0  # weight of a new sample (grows by 1/decay per sample)
        self.lo = math.inf
        self.hi = -math.inf

    def to_state(self) -> dict[str, Any]:
        """What the histogram has learned, as plain data (``bins`` and ``memory`` are
        configuration, not in it)."""
        return {"counts": f32_bytes(self.counts), "total": self.total, "weight": self.weight,
                "lo": self.lo, "hi": self.hi}

    def load_state(self, state: Fields) -> None:
        """Take the learned state of :meth:`to_state`'s output, validated."""
        self.counts = state.f32("counts", self.bins, lo=0.0)
        self.total = state.number("total", lo=0.0)
        # the weight grows from 1 by 1/decay per sample until it passes _RESCALE
        self.weight = state.number("weight", lo=1.0, hi=_RESCALE / self.decay * (1 + 1e-9))
        self.lo, self.hi = state.span("lo", "hi")

    def _index(self, x: float) -> int:
        lo, hi = self.lo, self.hi
        if not hi > lo:
            return 0
        span = hi - lo
        if math.isinf(span):  # a range wider than the largest float: halve everything
            x, lo, span = x * 0.5, lo * 0.5, hi * 0.5 - lo * 0.5
        f = (x - lo) / span * self.bins
        if not f >= 0.0:  # below the range, or NaN
            return 0
        return min(int(min(f, float(self.bins))), self.bins - 1)  # f may be inf

    def surprise(self, x: float) -> float:
        """``1 - p / p_uniform`` clipped to [0, 1]: 0 for a bin at least as common as
        in a uniform spread of the values, 1 for a bin not seen lately."""
        if self.total <= 0.0:
            return 0.0
        return max(0.0, 1.0 - self.counts[self._index(x)] / self.total * self.bins)

    def learn(self, x: float) -> None:
        """Count ``x`` (the range is widened to include it); older counts decay."""
        self.lo, self.hi = min(self.lo, x), max(self.hi, x)
        self.weight /= self.decay
        self.counts[self._index(x)] += self.weight
        self.total += self.weight
        if self.weight > _RESCALE:
            c, w = self.counts, self.weight
            for i in range(self.bins):
                c[i] /= w
            self.total /= w
            self.weight = 1.0
