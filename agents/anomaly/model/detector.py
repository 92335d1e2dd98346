"""The per-series detector: two surprise channels -> anomaly likelihoods -> alert hygiene."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

from river import base

from dharma.agents.anomaly.model.baseline import SeasonalBaseline
from dharma.agents.anomaly.model.episode import TAIL, Episode
from dharma.agents.anomaly.model.extremes import RecentRange
from dharma.agents.anomaly.model.fields import Fields
from dharma.agents.anomaly.model.histogram import ValueHistogram
from dharma.agents.anomaly.model.likelihood import AnomalyLikelihood, log_tail
from dharma.agents.anomaly.model.timebase import Cadence, to_seconds

__all__ = ["ANOMALY_THRESHOLD", "QUIET_CAP", "Sample", "ScoreDetail", "SeriesDetector"]

#: A detector's input, ``{"value": ..., "timestamp": ...}``.  Ours have str keys; river's
#: own form, ``dict[Hashable, Any]``, is accepted too, as its base class requires: mapping
#: keys are invariant, so a str-keyed dict is not one of those.
Sample = Mapping[str, Any] | Mapping[Hashable, Any]

#: One threshold for every series: alert when ``score >= ANOMALY_THRESHOLD``
#: (a recent-surprise tail probability of about 1e-5, see ``log_tail``).
ANOMALY_THRESHOLD = 0.5
#: Cap on the score while warming up or suppressed: defined, never an alert.
QUIET_CAP = 0.25

#: Smallest residual scale, as a fraction of the range seen (for flat series).
_SCALE_FLOOR = 1e-3
#: Standard deviation of Gaussian noise per unit of mean absolute deviation.
_SIGMA_PER_MAD = math.sqrt(math.pi / 2.0)
#: Event time the range of values remembers at least (two weeks, in seconds).
RANGE_PERIOD = 14 * 86_400.0
#: Largest magnitude a value is read at: any finite value is valid input, but sums and
#: differences of values near the float64 limit overflow to inf and NaN, and the daily
#: and weekly profiles hold deviations in float32 (at most 3.4e38).  A value beyond it
#: saturates: still an extreme, learned as one like any other.
VALUE_LIMIT = 1e30
#: Consecutive timestamps older than the last few learned after which the series' clock is
#: taken to have moved back for good (a redelivery of up to ``Cadence.seen`` learned samples,
#: plus this many older ones, is never taken for one).
_LATE_RESET = 5

READY, WARMING_UP, SUPPRESSED, INVALID, LATE = (
    "ready", "warming_up", "suppressed", "invalid", "late")


class ScoreDetail(NamedTuple):
    """A score with the state it was produced in."""

    score: float  #: calibrated score in [0, 1], what ``score_one`` returns
    state: str  #: ready, warming_up, suppressed, invalid (NaN/inf) or late (a replay)
    confidence: float  #: 0 (nothing learned) .. 1 (warm-up done)
    uncapped: float  #: the score before the warm-up / suppression cap
    expected: float  #: the baseline's prediction (NaN before the first value)
    #: the series is in an anomalous episode: ``uncapped`` at or above the threshold
    #: (ready or suppressed), or still off the level it had before the episode began
    anomalous: bool = False
    #: the residual scale ``expected`` was judged with (NaN without a baseline): what
    #: an expected band is drawn from
    scale: float = math.nan


class _Eval(NamedTuple):
    value: float
    t: float | None
    raw: float
    raw2: float
    detail: ScoreDetail
    season: float = 0.0  # the predictor's seasonal term at t
    scale: float = 0.0  # the residual scale the value was judged with


class SeriesDetector(base.AnomalyDetector):
    """Online anomaly detector for one metric series (river API, score then learn).

    ``x`` is ``{"value": float, "timestamp": datetime | epoch-ms | None}``.

    Parameters
    ----------
    warmup
        Samples learned before the score may reach the threshold.
    fast_alpha, slow_alpha, season_gamma, scale_alpha
        Steps of the baseline's fast correction, slow level, seasonal bins and scale.
    clip
        Winsorisation of learned values, in residual scales around the prediction.
    accept
        Consecutive out-of-band samples after which a shift is learned unclipped.
    surprise_half
        Residual (in scales) at which the raw surprise is 0.5.
    short, window, min_std
        Anomaly-likelihood short mean, long memory and std floor.
    spatial_tolerance
        Fraction of the seen range beyond which a value is a new extreme.
    suppress
        Samples after an alert during which the score is capped.
    spatial_tail
        Probability with which noise alone may set a new extreme by the margin required
        of a spatial anomaly (1 restores the plain ``spatial_tolerance`` rule).
    hist_bins
        Bins of the value-distribution channel (0 turns it off): the rarity of the
        deseasonalised value, with its own anomaly likelihood (``model/histogram.py``).
    range_rank
        Rank of the recent range's limits (``model/extremes.py``): fewer outliers than
        this cannot stretch the range that the scale floor and spatial novelty use.
    seed
        Accepted for the house convention; the detector is deterministic.

    Examples
    --------
    >>> det = SeriesDetector()
    >>> for i in range(600):
    ...     x = {"value": 10.0 + (i % 7) * 0.1, "timestamp": i * 300_000}
    ...     _ = det.score_one(x)
    ...     det.learn_one(x)
    >>> det.warming_up, det.score_one({"value": 10.3, "timestamp": 600 * 300_000}) < 0.5
    (False, True)
    >>> det.score_one({"value": 60.0, "timestamp": 600 * 300_000}) >= ANOMALY_THRESHOLD
    True
    >>> det.score_detail({"value": math.nan}).state
    'invalid'
    """

    def __init__(
        self,
        warmup: int = 150,
        fast_alpha: float = 0.05,
        slow_alpha: float = 0.002,
        season_gamma: float = 0.25,
        scale_alpha: float = 0.01,
        clip: float = 8.0,
        accept: int = 10,
        surprise_half: float = 3.0,
        short: int = 10,
        window: int = 8640,
        min_std: float = 0.02,
        spatial_tolerance: float = 0.05,
        suppress: int = 100,
        seed: int = 0,
        hist_bins: int = 32,
        spatial_tail: float = 1e-5,
        range_rank: int = 3,
    ) -> None:
        self.warmup = warmup
        self.fast_alpha = fast_alpha
        self.slow_alpha = slow_alpha
        self.season_gamma = season_gamma
        self.scale_alpha = scale_alpha
        self.clip = clip
        self.accept = accept
        self.surprise_half = surprise_half
        self.short = short
        self.window = window
        self.min_std = min_std
        self.spatial_tolerance = spatial_tolerance
        self.suppress = suppress
        self.seed = seed
        self._baseline = SeasonalBaseline(
            fast_alpha, slow_alpha, season_gamma, scale_alpha, accept)
        self._lik = AnomalyLikelihood(short, window, min_std)
        self.hist_bins = hist_bins
        self.spatial_tail = spatial_tail
        self._hist = ValueHistogram(hist_bins, window) if hist_bins > 0 else None
        self._lik2 = AnomalyLikelihood(short, window, min_std)
        self._clock = Cadence()
        self._n = 0
        self.range_rank = range_rank
        self._range = RecentRange(2 * window, rank=range_rank)  # memory: see _range_memory
        self._quiet = 0  # samples of suppression left
        self._episode = Episode()
        self._late = 0  # consecutive late timestamps seen
        self._last: _Eval | None = None  # score_one's result, reused by learn_one

    @property
    def confidence(self) -> float:
        """Share of the warm-up done, in [0, 1]."""
        return min(1.0, self._n / self.warmup) if self.warmup > 0 else 1.0

    @property
    def warming_up(self) -> bool:
        """``True`` until ``warmup`` samples have been learned."""
        return self._n < self.warmup

    def to_state(self) -> dict[str, Any]:
        """What the detector has learned, as plain data (``model/fields.py``); its
        configuration (the constructor arguments) is not in it."""
        return {"baseline": self._baseline.to_state(), "lik": self._lik.to_state(),
                "hist": None if self._hist is None else self._hist.to_state(),
                "lik2": self._lik2.to_state(), "clock": self._clock.to_state(),
                "n": self._n, "range": self._range.to_state(),
                "episode": self._episode.to_state(), "quiet": self._quiet, "late": self._late}

    def load_state(self, state: Fields) -> None:
        """Take the learned state of :meth:`to_state`'s output, validated against this
        detector's configuration (a state of another ``hist_bins`` or ``short`` is refused)."""
        self._baseline.load_state(state.part("baseline"))
        self._lik.load_state(state.part("lik"))
        hist = state.opt_part("hist")
        if (hist is None) != (self._hist is None):
            raise state.error("hist", f"present or absent against hist_bins={self.hist_bins}")
        if hist is not None and self._hist is not None:
            self._hist.load_state(hist)
        self._lik2.load_state(state.part("lik2"))
        self._clock.load_state(state.part("clock"))
        self._n = state.integer("n")
        self._range.load_state(state.part("range"))
        self._episode.load_state(state.part("episode"), self.short)
        # clamped, not refused: a worker configured with a shorter suppression takes it up
        self._quiet = min(state.integer("quiet"), self.suppress)
        self._late = state.integer("late", hi=_LATE_RESET - 1)
        self._last = None

    def score_one(self, x: Sample) -> float:
        """Anomaly score of ``x`` in [0, 1], computed before ``x`` is learned."""
        return self.score_detail(x).score

    def score_detail(self, x: Sample) -> ScoreDetail:
        """Score of ``x`` with its state and confidence (does not learn)."""
        ev = self._evaluate(x)
        self._last = ev
        return ev.detail

    def learn_one(self, x: Sample) -> None:
        """Learn ``x``.

        NaN/inf values are skipped; so are replays: a timestamp among the last few learned
        (a redelivery), or older than all of them, unless ``_LATE_RESET`` of those arrive
        in a row, which restarts the series' clock.  A sample that is merely out of order
        is learned.
        """
        ev = self._last
        value, t = _read(x)
        if ev is None or ev.value != value or ev.t != t:
            ev = self._evaluate(x)
        self._last = None
        if ev.detail.state == INVALID:
            return
        if ev.detail.state == LATE:
            if t is not None and self._clock.learned(t):  # redelivered: never a clock change
                return
            self._late += 1
            if self._late < _LATE_RESET:
                return
            self._clock = Cadence()  # the clock went back for good: follow it
        self._late = 0
        if t is not None:
            self._clock.update(t)
        if self._range.filled >= self._range.size - 1:  # a block starts next: its length
            self._range.memory = self._range_memory()
        if ev.detail.anomalous or self._episode.is_open:
            self._follow_episode(value - ev.season, ev.detail.anomalous)
        if self._hist is not None:
            self._hist.learn(value - ev.season)
        self._baseline.learn(value, t, self._clock.interval, self.clip)
        if self._n >= self.warmup // 3:  # the first surprises say more about a blank model
            self._lik.update(ev.raw)
            self._lik2.update(ev.raw2)
        self._range.learn(value)
        self._n += 1
        if ev.detail.score >= ANOMALY_THRESHOLD:
            self._quiet = self.suppress
        elif self._quiet > 0:
            self._quiet -= 1

    def _follow_episode(self, deseasonalised: float, anomalous: bool) -> None:
        """Open an episode at the first anomalous sample, with the band of the values
        so far (before this one is learned); it closes after ``short`` calm samples,
        or once as old as the slow level's memory (a shift that stays is the new normal)."""
        if self._episode.is_open:
            self._episode.learn(deseasonalised, anomalous, self.short,
                                round(1.0 / self.slow_alpha), self.short)
        elif anomalous and self._hist is not None:
            self._episode.open_with(self._hist.quantile(TAIL), self._hist.quantile(1.0 - TAIL),
                                    deseasonalised)

    def _range_memory(self) -> int:
        """Samples the range remembers: ``2 * window``, and at least ``RANGE_PERIOD``
        of event time, so that weekly extremes are not forgotten before they recur."""
        interval = self._clock.interval
        floor = math.ceil(RANGE_PERIOD / interval) if interval else 0
        return max(2 * self.window, floor)

    def _evaluate(self, x: Sample) -> _Eval:
        value, t = _read(x)
        conf = self.confidence
        if not math.isfinite(value):
            return _Eval(value, t, 0.0, 0.0, ScoreDetail(0.0, INVALID, conf, 0.0, math.nan))
        expected = self._baseline.predict(t)
        if expected != expected:  # first value
            return _Eval(value, t, 0.0, 0.0, ScoreDetail(0.0, WARMING_UP, conf, 0.0, math.nan))
        lo, hi = self._range.lo, self._range.hi
        span = hi - lo
        scale = max(self._baseline.scale, _SCALE_FLOOR * span, 1e-12)
        z = abs(value - expected) / scale
        raw = z / (z + self.surprise_half)
        # second channel: rarity of the deseasonalised value, own likelihood; max of the two
        score = log_tail(self._lik.tail(raw))
        raw2, season = 0.0, self._baseline.season(t)
        if self._hist is not None:
            raw2 = self._hist.surprise(value - season)
            score = max(score, log_tail(self._lik2.tail(raw2)))
        if span > 0 and self._beyond_range(value, lo, hi, scale):
            score = 1.0
        state = READY
        last = self._clock.last
        if t is not None and last is not None and t <= last and self._clock.replayed(t):
            state = LATE
        elif self._n < self.warmup:
            state = WARMING_UP
        elif self._quiet > 0:
            state = SUPPRESSED
        capped = score if state in (READY, LATE) else min(score, QUIET_CAP)
        anomalous = state in (READY, SUPPRESSED) and (
            score >= ANOMALY_THRESHOLD or self._episode.away(value - season))
        detail = ScoreDetail(capped, state, conf, score, expected, anomalous, scale)
        return _Eval(value, t, raw, raw2, detail, season, scale)


    def _beyond_range(self, value: float, lo: float, hi: float, scale: float) -> bool:
        """Spatial novelty: ``value`` lies further from every recent value than
        ``spatial_tolerance`` of the recent range and than noise would go beyond the
        range's largest value with probability about ``spatial_tail``.  The few values
        beyond the limits count as points: a spike that recurs is not new, a value in
        the gap between the range and an old outlier is."""
        margin = self.spatial_tolerance * (hi - lo)
        if lo - margin <= value <= hi + margin:
            return False
        margin = max(margin, _noise_margin(self._range.count, scale, self.spatial_tail))
        if lo - margin <= value <= hi + margin:
            return False
        return not self._range.near(value, margin)


def _noise_margin(n: float, scale: float, tail: float) -> float:
    """Excursion beyond the range of ``n`` values that noise exceeds with probability ``tail``.

    For ``n`` Gaussian values of spread ``sigma`` the maximum is about
    ``u = sigma * sqrt(2 ln n)``; a new value beats it with probability ``1/n``, and
    beats it by ``d`` with about ``exp(-u d / sigma**2) / n`` (the Gaussian tail's hazard
    is ``u / sigma**2``). Solving for ``d`` at probability ``tail`` gives the margin;
    ``sigma = sqrt(pi/2) * scale`` (``scale`` is a mean absolute error). It shrinks as the
    range ages and is 0 once ``n >= 1/tail``.

    >>> round(_noise_margin(200, 1.0, 1e-5), 2), _noise_margin(200, 1.0, 1.0)
    (2.39, 0.0)
    """
    if n < 2 or n * tail >= 1.0:
        return 0.0
    return _SIGMA_PER_MAD * scale * math.log(1.0 / (n * tail)) / math.sqrt(2.0 * math.log(n))


def _read(x: Sample) -> tuple[float, float | None]:
    """``(value, seconds)`` from an input dict; a missing/bad value reads as NaN, a
    finite one saturates at ``±VALUE_LIMIT``.

    >>> _read({"value": -1e300})[0], _read({"value": "x"})[0], _read({"value": math.inf})[0]
    (-1e+30, nan, inf)
    """
    try:
        value = float(x.get("value", math.nan))
    except (TypeError, ValueError):
        value = math.nan
    if abs(value) > VALUE_LIMIT and value != math.inf and value != -math.inf:
        value = math.copysign(VALUE_LIMIT, value)
    return value, to_seconds(x.get("timestamp"))

