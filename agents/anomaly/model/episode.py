"""Is the series still in its anomalous episode?

The detector's score says whether the *recent* surprise is improbable.  It goes
quiet while an incident is still going on: within about ``accept`` samples the
baseline takes a level shift as the new normal, and the histogram does so once
the new level is common.  An alert that followed the score would resolve in the
middle of the incident.  An :class:`Episode` remembers the band in which the
series' (deseasonalised) values lay *before* the episode began, the central
``1 - 2 * TAIL`` of the value histogram widened by ``DRIFT`` of its width on
either side (a trending series moves on while an incident lasts), and holds the
series anomalous while the median of its last few values stays outside it, so
the episode ends when the series comes back, not when the model has got used
to the incident.  A band of the values' own spread (not a multiple of a
residual scale) and a median (not the latest value) keep noisy and spiky
series from holding an episode open on their usual spikes.  A series that
never comes back (a permanent shift) closes its episode after ``max_age``
samples.
"""

from __future__ import annotations

import math
from typing import Any

from dharma.agents.anomaly.model.fields import Fields

__all__ = ["DRIFT", "TAIL", "Episode"]

#: Share of the pre-episode values below (and above) the band that counts as normal.
TAIL = 0.01
#: How far beyond the pre-episode band, as a share of its width, values still count as
#: back: series drift while an incident lasts (a morning's traffic climbs on meanwhile).
DRIFT = 0.25


class Episode:
    """Band of normal values of the open anomalous episode, if any.

    Examples
    --------
    >>> ep = Episode()
    >>> ep.away(60.0)  # no episode open
    False
    >>> ep.open_with(48.0, 52.0, 60.0)  # normal again within [47, 53]
    >>> ep.away(60.0), ep.away(52.5)  # the median of the recent values is still 60
    (True, True)
    >>> for _ in range(3):
    ...     ep.learn(50.0, False, calm_to_close=3, max_age=100, recent=5)
    >>> ep.away(60.0), ep.is_open
    (False, False)
    """

    __slots__ = ("age", "calm", "hi", "lo", "recent")

    def __init__(self) -> None:
        self.lo = math.nan  # band of normal values before the episode (NaN: no episode)
        self.hi = math.nan
        self.age = 0  # samples since the episode opened
        self.calm = 0  # consecutive samples neither scored anomalous nor away
        self.recent: list[float] = []  # the latest values of the open episode, oldest first

    def to_state(self) -> dict[str, Any]:
        """The open episode as plain data (``None`` limits: no episode)."""
        if not self.is_open:
            return {"lo": None, "hi": None, "age": 0, "calm": 0, "recent": []}
        return {"lo": self.lo, "hi": self.hi, "age": self.age, "calm": self.calm,
                "recent": self.recent}

    def load_state(self, state: Fields, recent: int) -> None:
        """Take :meth:`to_state`'s output, validated (at most ``recent`` values)."""
        lo, hi = state.opt_number("lo"), state.opt_number("hi")
        if (lo is None) != (hi is None) or (lo is not None and hi is not None and lo > hi):
            raise state.error("lo/hi", f"[{lo}, {hi}] is neither a band nor no episode")
        self.lo = math.nan if lo is None else lo
        self.hi = math.nan if hi is None else hi
        self.age, self.calm = state.integer("age"), state.integer("calm")
        self.recent = state.numbers("recent", recent, min_len=1 if self.is_open else 0)
        if not self.is_open and (self.recent or self.age or self.calm):
            raise state.error("recent", "values without an episode")

    @property
    def is_open(self) -> bool:
        return self.lo == self.lo

    def open_with(self, lo: float, hi: float, value: float) -> None:
        """Open an episode at ``value``; normal values lay within ``[lo, hi]`` before it."""
        drift = DRIFT * (hi - lo)
        self.lo, self.hi, self.age, self.calm = lo - drift, hi + drift, 0, 0
        self.recent = [value]

    def away(self, value: float) -> bool:
        """``True`` while an episode is open and the median of its recent values and
        ``value`` lies outside its band."""
        if self.lo != self.lo:  # no episode open (cheaper than is_open: called per sample)
            return False
        ordered = sorted((*self.recent, value))
        return not self.lo <= ordered[len(ordered) // 2] <= self.hi

    def learn(self, value: float, anomalous: bool, calm_to_close: int, max_age: int,
              recent: int) -> None:
        """Follow one sample of an open episode (the last ``recent`` values are kept):
        ``calm_to_close`` samples in a row that are not ``anomalous``, or ``max_age``
        samples, close it."""
        if not self.is_open:
            return
        self.recent = [*self.recent[1 - recent:], value]
        self.age += 1
        self.calm = 0 if anomalous else self.calm + 1
        if self.calm >= calm_to_close or self.age >= max_age:
            self.lo = self.hi = math.nan
            self.recent = []
