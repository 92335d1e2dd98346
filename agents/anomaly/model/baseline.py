"""Robust expected value of a series: level plus daily and weekly profiles.

An additive Holt-Winters-like baseline whose seasonal profiles are indexed by
wall-clock phase (time of day, time of week) rather than by sample count, so a
series that changes its sampling interval keeps its profiles. A profile is used
only once it has seen a full period *and* has predicted better than the
baseline without it, so a series with no seasonality never pays for one.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from dharma.agents.anomaly.model.fields import Fields, f32_bytes

__all__ = ["Profile", "SeasonalBaseline"]

DAY = 86_400.0
WEEK = 7 * DAY
#: Error ratio a profile must beat to be used (it must cut the error by 10 %).
_GAIN = 0.9
#: Most bins a profile read from a checkpoint may have (a week of 5-minute bins).
_MAX_BINS = 2016


class Profile:
    """Mean deviation from the level, and its spread, per phase bin of one period.

    Each bin learns a winsorised exponential mean of the deviations seen at its
    phase: a deviation further than ``clip`` spreads from the bin's mean enters
    clipped, so one anomaly barely moves the profile, while a bin seen for the
    first time takes the deviation as is (a sharp daily edge is learned at once).

    Parameters
    ----------
    period
        Period in seconds (a day or a week).
    width
        Bin width in seconds.
    """

    __slots__ = ("bins", "first", "period", "spread", "width")

    def __init__(self, period: float, width: float) -> None:
        self.period = period
        self.width = width
        n = max(1, round(period / width))
        self.bins = array("f", [math.nan]) * n
        self.spread = array("f", [0.0]) * n
        self.first: float | None = None  # first time learned, to know when a period is covered

    def to_state(self) -> dict[str, Any]:
        """What the profile has learned, as plain data (``model/fields.py``)."""
        return {"width": self.width, "bins": f32_bytes(self.bins),
                "spread": f32_bytes(self.spread), "first": self.first}

    @classmethod
    def from_state(cls, period: float, state: Fields) -> Profile:
        """A profile of ``period`` from :meth:`to_state`'s output, validated."""
        prof = cls(period, state.number("width", lo=period / _MAX_BINS, hi=period))
        n = len(prof.bins)
        prof.bins = state.f32("bins", n, nan=True)  # NaN: a bin not seen yet
        prof.spread = state.f32("spread", n, lo=0.0)
        prof.first = state.opt_number("first")
        return prof

    def index(self, t: float) -> int:
        return int((t % self.period) / self.width) % len(self.bins)

    def get(self, t: float) -> float:
        v = self.bins[self.index(t)]
        return 0.0 if v != v else v

    def learn(self, t: float, dev: float, gamma: float, clip: float, spread0: float) -> None:
        """Learn deviation ``dev`` at ``t``; ``spread0`` seeds a new bin's spread."""
        i = self.index(t)
        v = self.bins[i]
        if v != v:
            self.bins[i], self.spread[i] = dev, spread0
        else:
            sp = self.spread[i]
            e = min(abs(dev - v), clip * sp) if sp > 0.0 else abs(dev - v)
            lo, hi = v - clip * sp, v + clip * sp
            self.bins[i] = v + gamma * (min(max(dev, lo), hi) - v)
            self.spread[i] = sp + gamma * (e - sp)
        if self.first is None:
            self.first = t

    def covered(self, t: float) -> bool:
        return self.first is not None and t - self.first >= self.period


class SeasonalBaseline:
    """Slow level, optional daily and weekly profiles, fast correction, robust scale.

    Three nested predictors are kept side by side, ``k = 0`` (no season),
    ``1`` (daily) and ``2`` (daily + weekly)::

        pred_k(t) = slow + season_k(t) + fast_k

    ``slow`` is a slow exponential mean of the values, the profiles learn the
    deviation from it per phase bin, and ``fast_k`` is a quick exponential mean
    of what is left, so a drifting or regime-switching series is followed. Each
    predictor keeps its own running mean absolute error (winsorised); the
    simplest predictor whose error is not beaten by 10 % is used, and its error
    is the residual scale. Learned values are winsorised at ``clip`` scales
    around the prediction, unless ``accept`` samples in a row fall outside,
    which is taken as a genuine shift.

    Parameters
    ----------
    fast_alpha
        Step of the fast correction (memory ~ ``1 / fast_alpha`` samples).
    slow_alpha
        Step of the slow level.
    season_gamma
        Step of a profile bin each time its phase comes round.
    scale_alpha
        Step of the running mean absolute errors (the scales).
    accept
        Consecutive out-of-band samples after which a shift is learned as is.

    Examples
    --------
    >>> b = SeasonalBaseline()
    >>> for i in range(4 * 288):  # four days of a 5-minute square wave
    ...     t = i * 300.0
    ...     b.learn(10.0 if (t % DAY) < DAY / 2 else 0.0, t, 300.0, clip=4.0)
    >>> round(b.predict(4 * DAY)), b.model  # the next value: the daily rise is expected
    (10, 1)
    """

    __slots__ = ("accept", "day", "err", "fast", "fast_alpha", "model", "n", "run",
                 "scale_alpha", "season_gamma", "slow", "slow_alpha", "week")

    def __init__(
        self,
        fast_alpha: float = 0.05,
        slow_alpha: float = 0.002,
        season_gamma: float = 0.25,
        scale_alpha: float = 0.01,
        accept: int = 10,
    ) -> None:
        self.fast_alpha = fast_alpha
        self.slow_alpha = slow_alpha
        self.season_gamma = season_gamma
        self.scale_alpha = scale_alpha
        self.accept = accept
        self.run = 0  # consecutive samples outside the clip band
        self.n = 0  # errors learned (the scales average them equally until 1/n < scale_alpha)
        self.slow: float | None = None
        self.fast = [0.0, 0.0, 0.0]
        self.err = [0.0, 0.0, 0.0]
        self.model = 0  # predictor in use
        self.day: Profile | None = None
        self.week: Profile | None = None

    def to_state(self) -> dict[str, Any]:
        """What the baseline has learned, as plain data (its configuration is not in it)."""
        return {"slow": self.slow, "fast": self.fast, "err": self.err, "model": self.model,
                "run": self.run, "n": self.n,
                "day": None if self.day is None else self.day.to_state(),
                "week": None if self.week is None else self.week.to_state()}

    def load_state(self, state: Fields) -> None:
        """Take the learned state of :meth:`to_state`'s output, validated."""
        self.slow = state.opt_number("slow")
        self.fast = state.numbers("fast", 3, min_len=3)
        self.err = state.numbers("err", 3, min_len=3, lo=0.0)
        self.model = state.integer("model", hi=2)
        self.run = state.integer("run")
        self.n = state.integer("n")
        day, week = state.opt_part("day"), state.opt_part("week")
        self.day = None if day is None else Profile.from_state(DAY, day)
        self.week = None if week is None else Profile.from_state(WEEK, week)
        if self.model and (self.day, self.week)[self.model - 1] is None:
            raise state.error("model", f"predictor {self.model} without its profile")

    @property
    def scale(self) -> float:
        """Running mean absolute error of the predictor in use."""
        return self.err[self.model]

    def _seasons(self, t: float | None) -> tuple[float, float]:
        """Daily and weekly terms at time ``t`` (0 when unknown)."""
        if t is None:
            return 0.0, 0.0
        d = self.day.get(t) if self.day is not None else 0.0
        w = self.week.get(t) if self.week is not None else 0.0
        return d, w

    def _preds(self, t: float | None) -> tuple[float, float, float]:
        slow = self.slow if self.slow is not None else math.nan
        d, w = self._seasons(t)
        f = self.fast
        return slow + f[0], slow + d + f[1], slow + d + w + f[2]

    def season(self, t: float | None) -> float:
        """Seasonal term of the predictor in use at time ``t`` (0 without a profile)."""
        if self.model == 0:
            return 0.0
        d, w = self._seasons(t)
        return d if self.model == 1 else d + w

    def predict(self, t: float | None) -> float:
        """Expected value at time ``t`` (NaN before the first value)."""
        return self._preds(t)[self.model]

    def _resize(self, interval: float | None) -> None:
        """(Re)build the profiles when the cadence first resolves or changes a lot."""
        if interval is None:
            return
        want_day = max(300.0, interval) if interval <= DAY / 8 else None
        want_week = max(3600.0, interval) if interval <= DAY / 4 else None
        for name, period, want in (("day", DAY, want_day), ("week", WEEK, want_week)):
            prof: Profile | None = getattr(self, name)
            have = prof.width if prof is not None else None
            if want is None:
                setattr(self, name, None)
            elif have is None or not 0.5 <= want / have <= 2.0:
                setattr(self, name, Profile(period, want))

    def learn(self, x: float, t: float | None, interval: float | None, clip: float) -> None:
        """Learn ``x``, winsorised to ``clip`` scales around the prediction."""
        if self.slow is None:
            self.slow = x
            return
        self._resize(interval)
        preds = self._preds(t)
        pred, scale = preds[self.model], self.scale
        lo, hi = pred - clip * scale, pred + clip * scale
        self.run = self.run + 1 if not lo <= x <= hi else 0
        raw = x
        if self.run < self.accept:
            x = min(max(x, lo), hi)
        self.n += 1
        a, err = max(self.scale_alpha, 1.0 / self.n), self.err
        for k in range(3):
            e = min(abs(x - preds[k]), clip * err[k]) if err[k] > 0.0 else abs(x - preds[k])
            err[k] += a * (e - err[k])
        self._learn_levels(x, raw, t, interval, clip)
        self.model = self._choose(t)

    def _learn_levels(
        self, x: float, raw: float, t: float | None, interval: float | None, clip: float
    ) -> None:
        """Levels learn winsorised ``x``; profiles winsorise ``raw`` per bin.

        A bin wider than the sampling interval is visited several times per period;
        its step is shared between those visits, so each bin moves by about
        ``season_gamma`` per period whatever the cadence.
        """
        slow = self.slow if self.slow is not None else x
        d, w = self._seasons(t)
        f, fa = self.fast, self.fast_alpha
        f[0] += fa * (x - slow - f[0])
        f[1] += fa * (x - slow - d - f[1])
        f[2] += fa * (x - slow - d - w - f[2])
        if t is not None and interval is not None and self.day is not None:
            g = self.season_gamma
            self.day.learn(t, raw - slow, g * min(1.0, interval / self.day.width), clip,
                           self.err[0])
            if self.week is not None and self.model >= 1:  # a correction to a daily model
                self.week.learn(t, raw - slow - d, g * min(1.0, interval / self.week.width),
                                clip, self.err[1])
        self.slow = slow + self.slow_alpha * (x - slow)

    def _choose(self, t: float | None) -> int:
        """Predictor to use, with hysteresis: a profile is adopted when it cuts the
        error by 10 % and dropped only when it is no better than going without."""
        err, m = self.err, self.model
        ok = (True, t is not None and self.day is not None and self.day.covered(t),
              t is not None and self.week is not None and self.week.covered(t))
        while m < 2 and ok[m + 1] and err[m + 1] < _GAIN * err[m]:
            m += 1
        while m > 0 and (not ok[m] or err[m] > err[m - 1]):
            m -= 1
        return m
