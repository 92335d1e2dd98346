"""The range a series has recently taken, robust to a single point.

A range that only ever widens lets one outlier blind a series for good: after
one value of 5,000 on a series at 50 ± 1, nothing short of 5,000 is a new
extreme, the histogram's bins are 150 units wide and a scale floor tied to the
range dwarfs the noise.  :class:`RecentRange` forgets and bounds a single
point's influence at once: its limits are the *second* smallest and *second*
largest of the last ``memory`` values, so one point moves them no further than
the values already seen, and a point older than ``memory`` samples (give or
take one block) no longer counts at all.

The window is kept as ``blocks`` blocks, each holding its two smallest and two
largest values (order statistics of a union merge from those of its parts), so
state is O(blocks) and learning O(1), with an O(blocks) merge when a block is
forgotten or the limits move.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from dharma.agents.anomaly.model.fields import INT64_MAX, Fields

__all__ = ["RecentRange"]

_INF = math.inf


class RecentRange:
    """Second smallest and second largest of the last ``memory`` values.

    Parameters
    ----------
    memory
        Values remembered, rounded up to whole blocks.  The owner may change it;
        blocks started afterwards have the new length.
    blocks
        Blocks the window is kept in: a block is forgotten as a whole.

    Examples
    --------
    >>> r = RecentRange(memory=100, blocks=4)
    >>> for i in range(50):
    ...     r.learn(50.0 + i % 3)
    >>> r.learn(5000.0)  # one outlier does not widen the range ...
    >>> r.lo, r.hi, r.count
    (50.0, 52.0, 51)
    >>> r.learn(4000.0)  # ... a second one does
    >>> r.hi
    4000.0
    >>> for i in range(100):
    ...     r.learn(10.0 + i % 2)  # after ``memory`` values the old ones are forgotten
    >>> r.lo, r.hi
    (10.0, 11.0)
    """

    __slots__ = ("blocks", "filled", "hi", "highs", "lo", "lows", "memory", "n", "pos", "size")

    def __init__(self, memory: int = 2000, blocks: int = 8) -> None:
        self.memory = memory
        self.blocks = blocks
        self.size = self._block_size()  # length of the block being filled
        self.lows = array("d", [_INF]) * (2 * blocks)  # per block: smallest, second smallest
        self.highs = array("d", [-_INF]) * (2 * blocks)  # per block: largest, second largest
        self.pos = 0  # block being filled
        self.filled = 0  # values in the block being filled
        self.n = 0  # values learned
        self.lo = _INF  # second smallest in the window (the smallest while only one)
        self.hi = -_INF

    def to_state(self) -> dict[str, Any]:
        """What the range holds, as plain data (``blocks`` is configuration; an empty
        slot is an infinity)."""
        return {"lows": self.lows.tolist(), "highs": self.highs.tolist(), "pos": self.pos,
                "filled": self.filled, "n": self.n, "memory": self.memory, "size": self.size}

    def load_state(self, state: Fields) -> None:
        """Take :meth:`to_state`'s output, validated; the limits are recomputed from it."""
        k = 2 * self.blocks
        self.lows = array("d", state.numbers("lows", k, min_len=k, hi=_INF, finite=False))
        self.highs = array("d", state.numbers("highs", k, min_len=k, lo=-_INF, finite=False))
        self.pos = state.integer("pos", hi=self.blocks - 1)
        self.memory = state.integer("memory", lo=1, hi=INT64_MAX // 2)
        self.size = state.integer("size", lo=1, hi=self.memory)
        self.filled = state.integer("filled", hi=self.size)
        self.n = state.integer("n")
        pairs = [(self.lows[i], self.lows[i + 1], -self.highs[i], -self.highs[i + 1])
                 for i in range(0, k, 2)]
        if any(a == -_INF or a > b for p in pairs for a, b in (p[:2], p[2:])):
            raise state.error("lows/highs", "not the two smallest / largest of each block")
        self._merge()

    @property
    def count(self) -> int:
        """Values in the window (the older blocks are counted at the current length)."""
        return min(self.n, (self.blocks - 1) * self.size + self.filled)

    def learn(self, x: float) -> None:
        """Add ``x`` (finite) to the window, forgetting the oldest block when one is due."""
        if self.filled >= self.size:
            self._next_block()
        i = 2 * self.pos
        lows, highs = self.lows, self.highs
        if x < lows[i + 1]:
            lows[i], lows[i + 1] = (x, lows[i]) if x < lows[i] else (lows[i], x)
        if x > highs[i + 1]:
            highs[i], highs[i + 1] = (x, highs[i]) if x > highs[i] else (highs[i], x)
        self.filled += 1
        self.n += 1
        if x < self.lo or x > self.hi or self.n <= 3:
            self._merge()

    def _block_size(self) -> int:
        return max(1, math.ceil(self.memory / self.blocks))

    def _next_block(self) -> None:
        self.pos = (self.pos + 1) % self.blocks
        i = 2 * self.pos
        self.lows[i] = self.lows[i + 1] = _INF
        self.highs[i] = self.highs[i + 1] = -_INF
        self.filled = 0
        self.size = self._block_size()
        self._merge()

    def _merge(self) -> None:
        """Second smallest / largest over the blocks (smallest / largest while fewer
        than three values have been seen)."""
        lows, highs = sorted(self.lows)[:2], sorted(self.highs)[-2:]
        if self.n < 3:
            self.lo, self.hi = lows[0], highs[1]
        else:
            self.lo, self.hi = lows[1], highs[0]
