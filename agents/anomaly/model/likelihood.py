"""Anomaly likelihood: how unusual is the recent average surprise?

The post-processing step that lifts Numenta's HTM from 54 to 70 on NAB
(Ahmad et al., 2017, "Unsupervised real-time anomaly detection for streaming
data", Neurocomputing 262). Raw surprise scores are noisy and their typical
level differs from series to series; what is comparable across series is how
improbable the *recent* surprise is given the series' own history of surprise.

* short-term mean of the raw score over the last ``short`` samples;
* a Gaussian fitted (exponentially weighted, memory ``window`` samples) to the
  history of that short-term mean;
* the upper-tail probability ``q`` of the current short-term mean under it,
  read from a Student t rather than the Gaussian itself while the fit rests on
  few independent short means (``n / short`` of them, capped by the memory), so
  a young series whose spread of surprise is not yet known does not alarm on it;
* reported on a log scale, ``-log10(q) / 10``, so that 0.5 means ``q = 1e-5``
  and 1.0 means ``q <= 1e-10`` (HTM's ``computeLogLikelihood``).

This implementation keeps O(short) state instead of HTM's 8640-sample window.
"""

from __future__ import annotations

import math
from typing import Any

from dharma.agents.anomaly.model.fields import Fields

__all__ = ["AnomalyLikelihood", "log_tail"]


_SQRT2 = math.sqrt(2.0)
#: Smallest tail probability reported (score 1.0).
TAIL_FLOOR = 1e-10


def log_tail(q: float) -> float:
    """Map a tail probability to a score in [0, 1]: ``-log10(q) / 10``.

    Examples
    --------
    >>> log_tail(1e-5), log_tail(1.0), log_tail(0.0)
    (0.5, 0.0, 1.0)
    """
    return min(1.0, -math.log10(max(q, TAIL_FLOOR)) / 10.0) + 0.0


def _t_as_normal(t: float, dof: float) -> float:
    """Normal deviate with the same upper tail as Student's ``t`` with ``dof`` degrees
    of freedom (Fisher's approximation, within ~5 % of the tail from 20 degrees).

    >>> round(_t_as_normal(4.26, 1e9), 2), round(_t_as_normal(4.26, 20), 2)
    (4.26, 3.49)
    """
    return t * (1.0 - 0.25 / dof) / math.sqrt(1.0 + t * t / (2.0 * dof))


class AnomalyLikelihood:
    """Tail probability of the recent mean raw score under its own long-run Gaussian.

    Parameters
    ----------
    short
        Samples in the short-term mean.
    window
        Memory (samples) of the long-run mean and variance.
    min_std
        Floor of the long-run standard deviation, in raw-score units, so a
        series whose surprise has been constant does not turn every wobble into
        an alarm.

    Examples
    --------
    >>> lik = AnomalyLikelihood(short=3)
    >>> for i in range(500):
    ...     lik.update(0.1 + 0.05 * (i % 3))
    >>> lik.tail(0.15) > 0.3, lik.tail(0.9) < 1e-5
    (True, True)
    """

    __slots__ = ("_buf", "_pos", "_sum", "mean", "min_std", "n", "short", "var", "window")

    def __init__(self, short: int = 10, window: int = 2000, min_std: float = 0.02) -> None:
        self.short = short
        self.window = window
        self.min_std = min_std
        self._buf: list[float] = []
        self._pos = 0
        self._sum = 0.0
        self.n = 0
        self.mean = 0.0
        self.var = 0.0

    def to_state(self) -> dict[str, Any]:
        """What the likelihood has learned, as plain data (``short``, ``window`` and
        ``min_std`` are configuration, not in it)."""
        return {"buf": self._buf, "pos": self._pos, "sum": self._sum, "n": self.n,
                "mean": self.mean, "var": self.var}

    def load_state(self, state: Fields) -> None:
        """Take the learned state of :meth:`to_state`'s output, validated."""
        buf = state.numbers("buf", self.short, lo=0.0, hi=1.0)  # raw scores
        pos = state.integer("pos", hi=self.short - 1 if len(buf) == self.short else 0)
        total = state.number("sum")
        if abs(total - math.fsum(buf)) > 1e-6 * (1 + len(buf)):
            raise state.error("sum", "is not the sum of buf")
        self._buf, self._pos, self._sum = buf, pos, total
        self.n = state.integer("n")
        self.mean = state.number("mean")
        self.var = state.number("var", lo=0.0)

    def _avg_with(self, raw: float) -> float:
        """Short-term mean if ``raw`` were the newest sample."""
        buf = self._buf
        if len(buf) < self.short:
            return (self._sum + raw) / (len(buf) + 1)
        return (self._sum - buf[self._pos] + raw) / self.short

    def tail(self, raw: float) -> float:
        """Upper-tail probability of the short-term mean including ``raw``."""
        if self.n == 0:
            return 0.5
        std = max(math.sqrt(self.var), self.min_std)
        z = (self._avg_with(raw) - self.mean) / std
        dof = max(1.0, min(self.n, self.window) / self.short - 1.0)
        return 0.5 * math.erfc(_t_as_normal(z, dof) / _SQRT2)

    def update(self, raw: float) -> None:
        """Append ``raw``; the long-run Gaussian learns the new short-term mean.

        The mean enters the fit winsorised at 4 standard deviations, so one
        anomaly widens the learned spread of surprise only a little.
        """
        avg = self._avg_with(raw)
        buf = self._buf
        if len(buf) < self.short:
            buf.append(raw)
        else:
            self._sum -= buf[self._pos]
            buf[self._pos] = raw
            self._pos = (self._pos + 1) % self.short
        self._sum += raw
        if self._pos == 0:
            self._sum = sum(buf)  # no drift from a long run of += and -=
        self.n += 1
        if self.n == 1:
            self.mean = avg
            return
        alpha = max(1.0 / self.n, 1.0 / self.window)
        std = max(math.sqrt(self.var), self.min_std)
        avg = min(avg, self.mean + 4.0 * std)
        delta = avg - self.mean
        self.mean += alpha * delta
        self.var = (1.0 - alpha) * (self.var + alpha * delta * delta)
