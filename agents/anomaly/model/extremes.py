"""The range a series has recently taken, robust to a handful of outliers.

A range that only ever widens lets one outlier blind a series for good: after
one value of 5,000 on a series at 50 ± 1, nothing short of 5,000 is a new
extreme, the histogram's bins are 150 units wide and a scale floor tied to the
range dwarfs the noise.  :class:`RecentRange` forgets, and bounds what a few
outliers can do: its limits are the ``rank``-th smallest and ``rank``-th
largest of the last ``memory`` values, so fewer than ``rank`` points, however
extreme, move them no further than the values already seen (a glitching
exporter's outliers come in pairs: counter wrap-arounds, unit bugs), and a
point older than ``memory`` samples (give or take one block) no longer counts
at all.  The values beyond the limits (fewer than ``rank`` on each side) are
kept one by one, so the window can still say whether a value lies near one it
has taken (:meth:`RecentRange.near`): a spike that recurs is not new, a shift
into the gap between the bulk and an old outlier is.

The window is kept as ``blocks`` blocks, each holding its ``rank`` smallest and
``rank`` largest values (the order statistics of a union up to ``rank`` merge
from those of its parts), so state is O(blocks * rank) and learning O(1) for a
value that is none of its block's extremes, with an O(blocks * rank) merge when
a block is forgotten or the limits move.
"""

from __future__ import annotations

import math
from array import array
from itertools import pairwise
from typing import Any

from dharma.agents.anomaly.model.fields import INT64_MAX, Fields

__all__ = ["RecentRange"]

_INF = math.inf


class RecentRange:
    """``rank``-th smallest and ``rank``-th largest of the last ``memory`` values.

    Parameters
    ----------
    memory
        Values remembered, rounded up to whole blocks.  The owner may change it;
        blocks started afterwards have the new length.
    blocks
        Blocks the window is kept in: a block is forgotten as a whole.
    rank
        Rank of the limits among the window's values from either end (while the
        window holds fewer than ``2 * rank - 1`` values: its middle ones, so the
        limits never cross).

    Examples
    --------
    >>> r = RecentRange(memory=100, blocks=4, rank=3)
    >>> for i in range(50):
    ...     r.learn(50.0 + i % 3)
    >>> r.learn(5000.0)
    >>> r.learn(5000.0)  # two outliers do not widen the range ...
    >>> r.lo, r.hi, r.count
    (50.0, 52.0, 52)
    >>> r.near(4990.0, 20.0), r.near(60.0, 5.0)  # ... they are values it has taken
    (True, False)
    >>> r.learn(4000.0)  # a third one widens it
    >>> r.hi
    4000.0
    >>> for i in range(100):
    ...     r.learn(10.0 + i % 2)  # after ``memory`` values the old ones are forgotten
    >>> r.lo, r.hi
    (10.0, 11.0)
    """

    __slots__ = ("blocks", "filled", "hi", "highs", "lo", "lows", "memory", "n", "pos",
                 "rank", "size")

    def __init__(self, memory: int = 2000, blocks: int = 8, rank: int = 2) -> None:
        self.memory = memory
        self.blocks = blocks
        self.rank = rank
        self.size = self._block_size()  # length of the block being filled
        self.lows = array("d", [_INF]) * (rank * blocks)  # per block: its smallest, ascending
        self.highs = array("d", [-_INF]) * (rank * blocks)  # per block: its largest, descending
        self.pos = 0  # block being filled
        self.filled = 0  # values in the block being filled
        self.n = 0  # values learned
        self.lo = _INF  # rank-th smallest in the window
        self.hi = -_INF

    def to_state(self) -> dict[str, Any]:
        """What the range holds, as plain data (``blocks`` and ``rank`` are configuration;
        an empty slot is an infinity)."""
        return {"lows": self.lows.tolist(), "highs": self.highs.tolist(), "pos": self.pos,
                "filled": self.filled, "n": self.n, "memory": self.memory, "size": self.size}

    def load_state(self, state: Fields) -> None:
        """Take :meth:`to_state`'s output, validated; the limits are recomputed from it."""
        k = self.rank * self.blocks
        self.lows = array("d", state.numbers("lows", k, min_len=k, hi=_INF, finite=False))
        self.highs = array("d", state.numbers("highs", k, min_len=k, lo=-_INF, finite=False))
        self.pos = state.integer("pos", hi=self.blocks - 1)
        self.memory = state.integer("memory", lo=1, hi=INT64_MAX // 2)
        self.size = state.integer("size", lo=1, hi=self.memory)
        self.filled = state.integer("filled", hi=self.size)
        self.n = state.integer("n")
        if not all(map(self._is_block, range(self.blocks))):
            raise state.error("lows/highs", "not the smallest / largest values of each block")
        self._merge()

    def _is_block(self, b: int) -> bool:
        """Block ``b`` holds its smallest values ascending and its largest descending,
        as many of each (empty slots last)."""
        i, j = b * self.rank, (b + 1) * self.rank
        lows, highs = self.lows[i:j], [-h for h in self.highs[i:j]]
        return (all(a <= c for a, c in pairwise(lows))
                and all(a <= c for a, c in pairwise(highs))
                and lows[0] != -_INF and highs[0] != -_INF
                and lows.count(_INF) == highs.count(_INF))

    @property
    def count(self) -> int:
        """Values in the window (the older blocks are counted at the current length)."""
        return min(self.n, (self.blocks - 1) * self.size + self.filled)

    def near(self, x: float, margin: float) -> bool:
        """Whether ``x``, beyond the limits, lies within ``margin`` of a value of the window
        beyond them (all of which are kept: fewer than ``rank`` on each side)."""
        if x > self.hi:
            return any(abs(x - v) <= margin for v in self.highs if v > self.hi)
        return any(abs(x - v) <= margin for v in self.lows if v < self.lo)

    def learn(self, x: float) -> None:
        """Add ``x`` (finite) to the window, forgetting the oldest block when one is due."""
        if self.filled >= self.size:
            self._next_block()
        first = self.rank * self.pos
        last = first + self.rank - 1
        lows, highs = self.lows, self.highs
        if x < lows[last]:  # among the block's smallest: insert in order
            j = last
            while j > first and lows[j - 1] > x:
                lows[j] = lows[j - 1]
                j -= 1
            lows[j] = x
        if x > highs[last]:
            j = last
            while j > first and highs[j - 1] < x:
                highs[j] = highs[j - 1]
                j -= 1
            highs[j] = x
        self.filled += 1
        self.n += 1
        if x < self.lo or x > self.hi or self.n < 2 * self.rank:
            self._merge()

    def _block_size(self) -> int:
        return max(1, math.ceil(self.memory / self.blocks))

    def _next_block(self) -> None:
        self.pos = (self.pos + 1) % self.blocks
        first = self.rank * self.pos
        for i in range(first, first + self.rank):
            self.lows[i], self.highs[i] = _INF, -_INF
        self.filled = 0
        self.size = self._block_size()
        self._merge()

    def _merge(self) -> None:
        """The limits: the ``rank``-th smallest / largest over the blocks, or the middle
        ones while the window holds fewer than ``2 * rank - 1`` values."""
        lows, highs = sorted(self.lows), sorted(self.highs, reverse=True)
        j = min(self.rank, (self.count + 1) // 2)
        while j > 1 and (lows[j - 1] > highs[j - 1] or lows[j - 1] == _INF):
            j -= 1  # blocks resized with ``memory``: ``count`` is an estimate
        self.lo, self.hi = (lows[j - 1], highs[j - 1]) if j else (_INF, -_INF)
