"""Value-distribution novelty: how rare is the (deseasonalised) value lately?

The baseline's residual says whether a value is where the series was expected
to be *now*; it misses an anomaly that the fast correction has already
followed: a series that goes flat at a level it only ever crossed, a new
texture whose values fill a band the series rarely visits, a small sustained
shift. This channel looks at the value alone, CAD-OSE/histogram style: the
recent range (:class:`RecentRange`: the second smallest to the second largest
of the last ``memory`` values, so one outlier cannot stretch the bins) is cut
into ``bins`` equal bins, each with an exponentially decayed count (memory
``memory`` samples), and a value's surprise is how much rarer its bin is than a
uniform one; values beyond the range fall in the end bins. When the range has
moved by half a bin or more the counts are re-spread over the new bins. The
detector feeds it the value minus the learned daily/weekly term, so a daily
edge that crosses rare levels is not novel.

Decay is lazy: new counts are added with a growing weight, renormalised now
and then, so learning costs O(1) instead of O(bins).
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from dharma.agents.anomaly.model.extremes import RecentRange
from dharma.agents.anomaly.model.fields import Fields, f32_bytes

__all__ = ["ValueHistogram"]

#: Weight at which the counts are renormalised (keeps float32 counts accurate).
_RESCALE = 1e6


class ValueHistogram:
    """Exponentially decayed histogram of values over their recent range.

    Parameters
    ----------
    bins
        Number of equal-width bins over the recent range.
    memory
        Samples after which a count has decayed by ``1/e``; also the range's memory.

    Examples
    --------
    >>> h = ValueHistogram(bins=10)
    >>> for i in range(1000):
    ...     h.learn(float(i % 2))  # a two-level series
    >>> h.surprise(0.5), h.surprise(1.0)
    (1.0, 0.0)
    >>> h.learn(1e9)  # one outlier: the bins still resolve the two levels
    >>> h.surprise(0.5), h.surprise(0.0)
    (1.0, 0.0)
    """

    __slots__ = ("bins", "counts", "decay", "hi", "lo", "range", "total", "weight")

    def __init__(self, bins: int = 32, memory: int = 2000) -> None:
        self.bins = bins
        self.decay = 1.0 - 1.0 / memory
        self.counts = array("f", [0.0]) * bins
        self.total = 0.0  # sum of counts, in the current weight's units
        self.weight = 1.0  # weight of a new sample (grows by 1/decay per sample)
        self.range = RecentRange(memory)
        self.lo = math.inf  # the bins' span: the recent range when last re-binned
        self.hi = -math.inf

    def to_state(self) -> dict[str, Any]:
        """What the histogram has learned, as plain data (``bins`` and ``memory`` are
        configuration, not in it)."""
        return {"counts": f32_bytes(self.counts), "total": self.total, "weight": self.weight,
                "range": self.range.to_state(), "lo": self.lo, "hi": self.hi}

    def load_state(self, state: Fields) -> None:
        """Take the learned state of :meth:`to_state`'s output, validated."""
        self.counts = state.f32("counts", self.bins, lo=0.0)
        self.total = state.number("total", lo=0.0)
        # the weight grows from 1 by 1/decay per sample until it passes _RESCALE
        self.weight = state.number("weight", lo=1.0, hi=_RESCALE / self.decay * (1 + 1e-9))
        self.range.load_state(state.part("range"))
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

    def quantile(self, q: float) -> float:
        """The value below which a share ``q`` of the (decayed) counts lies, read
        linearly within its bin; NaN while nothing has been counted.

        >>> h = ValueHistogram(bins=10, memory=10**9)
        >>> for x in [0.0, 0.0, 100.0, 100.0] + [(i * 37 % 1000) / 10 for i in range(1000)]:
        ...     h.learn(x)  # 0 .. 100, in no order
        >>> round(h.quantile(0.01)), round(h.quantile(0.99))
        (1, 99)
        """
        if self.total <= 0.0:
            return math.nan
        want, below = q * sum(self.counts), 0.0
        width = (self.hi - self.lo) / self.bins
        for i, c in enumerate(self.counts):
            if below + c >= want and c > 0.0:
                return self.lo + width * (i + (want - below) / c)
            below += c
        return self.hi

    def learn(self, x: float) -> None:
        """Count ``x`` (finite); older counts decay, the bins follow the recent range."""
        self.range.learn(x)
        lo, hi = self.range.lo, self.range.hi
        half_bin = 0.5 * (hi - lo) / self.bins
        if not (abs(lo - self.lo) <= half_bin and abs(hi - self.hi) <= half_bin):
            self._rebin(lo, hi)
        self.weight /= self.decay
        self.counts[self._index(x)] += self.weight
        self.total += self.weight
        if self.weight > _RESCALE:
            c, w = self.counts, self.weight
            for i in range(self.bins):
                c[i] /= w
            self.total /= w
            self.weight = 1.0

    def _rebin(self, lo: float, hi: float) -> None:
        """Span the bins over ``[lo, hi]``, keeping the counts where their values were."""
        if self.total > 0.0:
            self.counts = array("f", self._spread(lo, hi))
        self.lo, self.hi = lo, hi

    def _spread(self, lo: float, hi: float) -> list[float]:
        """The counts over bins spanning ``[lo, hi]``: each old bin's count spread
        uniformly over its width; what falls beyond the new span goes to the end bins."""
        old, n = self.counts, self.bins
        new = [0.0] * n
        width, new_width = (self.hi - self.lo) / n, (hi - lo) / n
        if not (width > 0.0 and new_width > 0.0):  # a point mass (a span of subnormals too)
            at, self.lo, self.hi = self.lo, lo, hi
            new[self._index(at)] = sum(old)
            return new
        cum = [0.0]
        for c in old:
            cum.append(cum[-1] + c)

        def mass_below(x: float) -> float:
            f = (x - self.lo) / width
            if not f > 0.0:
                return 0.0
            if f >= n:
                return cum[n]
            k = int(f)
            return cum[k] + old[k] * (f - k)

        below = 0.0
        for j in range(n):
            upto = mass_below(lo + (j + 1) * new_width) if j < n - 1 else cum[n]
            new[j], below = upto - below, upto
        return new
