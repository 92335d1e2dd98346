"""Issue type of an alerting resource from its recent samples (rules, no model).

``classify(series, metric)`` reads every metric of one resource over the last
hour up to the alert and names the issue: one of :data:`ISSUE_TYPES`.

Each metric is reduced to its last *change* (:class:`Change`).  The split where
the series leaves its baseline is the one that best fits either a **step** (two
flat levels) or a **ramp** (flat, then a straight climb), by least squares over
every split.  When what follows that split is not the chosen model plus noise
(its residual, or its last samples, more than 3 or 4 noise units off), the
search moves past the split: an earlier incident inside the hour becomes the
past, and the last change is measured against the level just before it.  Then

* ``z``: recent level (median of the last 3 samples) minus the baseline's median,
  in units of the baseline's noise (MAD of successive differences / sqrt 2, robust
  to slow trends such as daily seasonality);
* ``change``: the same difference relative to the baseline's level;
* ``ramp``: in [0, 1], how much better the ramp fits than the step
  (``SSE_step / (SSE_step + SSE_ramp)``; 0.5 when they fit alike); ``step = 1 - ramp``;
* ``strength``: in [0, 1], ``(1 - exp(-(|z| - 2) / 4)) * (1 - exp(-|change| / 0.15))``:
  a change well beyond the noise *and* a material one.

Metrics are recognised by name (``memory``, ``disk``/``filesystem``, ``cpu``,
``latency``/``duration``/``response_time``, ``requests_per_second``/``rps``/
``request_rate``/``throughput``); the rules, each a score in [0, 1]:

* ``memory_leak``: memory up x steady, where steady goes from 0 (ramp <= 0.25, a
  jump) to 1 (ramp >= 0.75, a steady climb);
* ``disk_filling``: disk up x (0.5 + 0.5 ramp): a climb, or a big write;
* ``cpu_spike``: cpu up x step (a plateau);
* ``latency_shift``: latency up x step x (1 - cpu up): latency that rises with
  the CPU is the CPU's symptom;
* ``traffic_drop``: requests down x step.

When the alert's metric is given, rules that do not read it (cpu_spike reads cpu
and latency, traffic_drop requests and cpu, the others their own) count
:data:`OTHER_WEIGHT`.  The best rule wins with confidence
``best * best / (best + second)`` (its score, discounted by a close runner-up);
below :data:`MIN_SCORE` the answer is ``unknown``, with a confidence of at most
0.5 that falls as the best rule nears the threshold.  The thresholds are in
noise units and relative changes: nothing depends on an estate or a seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["ISSUE_TYPES", "MIN_SCORE", "OTHER_WEIGHT", "UNKNOWN", "Change", "Classification",
           "classify", "measure_change", "metric_family", "robust_noise"]

UNKNOWN = "unknown"
#: What :func:`classify` may answer (the generator's incident categories and unknown).
ISSUE_TYPES: tuple[str, ...] = ("memory_leak", "cpu_spike", "latency_shift", "disk_filling",
                                "traffic_drop", UNKNOWN)
#: A best rule scoring below this is no evidence of anything.
MIN_SCORE = 0.08
#: Weight of the rules that do not read the alert's metric, when it is given.
OTHER_WEIGHT = 0.3
#: Fewest samples a metric needs to be read at all (a baseline and a recent part).
MIN_SAMPLES = 8
#: Series longer than this are averaged into this many buckets first.
MAX_POINTS = 4096
#: Earlier changes stepped over to reach the last one.
_MAX_DEPTH = 4

_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("memory", ("memory", "mem_")),
    ("disk", ("disk", "filesystem")),
    ("cpu", ("cpu",)),
    ("latency", ("latency", "duration", "response_time")),
    ("traffic", ("requests_per_second", "rps", "request_rate", "throughput")),
)
#: Metric families each rule reads (for the alert-metric weighting).
_READS: dict[str, tuple[str, ...]] = {
    "memory_leak": ("memory",), "disk_filling": ("disk",), "cpu_spike": ("cpu", "latency"),
    "latency_shift": ("latency",), "traffic_drop": ("traffic", "cpu"),
}

Samples = Sequence[tuple[int, float]]
_Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Classification:
    """An issue type, how sure, and the figures it rests on."""

    issue_type: str
    confidence: float
    evidence: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """How one metric left its baseline (see the module docstring)."""

    z: float
    change: float
    ramp: float

    @property
    def strength(self) -> float:
        """Evidence of a real, material change, in [0, 1] (direction ignored)."""
        beyond = 1 - math.exp(-max(abs(self.z) - 2, 0) / 4)
        return beyond * (1 - math.exp(-abs(self.change) / 0.15))

    def up(self) -> float:
        """Strength of a rise (0 for a fall)."""
        return self.strength if self.z > 0 else 0.0

    def down(self) -> float:
        """Strength of a fall (0 for a rise)."""
        return self.strength if self.z < 0 else 0.0


NO_CHANGE = Change(0.0, 0.0, 0.5)


def metric_family(metric: str) -> str | None:
    """The family a metric name belongs to, None if no rule reads it.

    >>> metric_family("memory_utilization"), metric_family("http_request_duration_p99")
    ('memory', 'latency')
    >>> metric_family("cache_hit_ratio") is None
    True
    """
    name = metric.lower()
    return next((fam for fam, keys in _FAMILIES if any(k in name for k in keys)), None)


def _prepare(samples: Samples) -> tuple[_Array, _Array]:
    """Finite samples in time order, averaged into at most MAX_POINTS buckets."""
    arr = np.asarray([(t, v) for t, v in samples], dtype=np.float64).reshape(-1, 2)
    arr = arr[np.isfinite(arr).all(axis=1)]
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    if len(arr) > MAX_POINTS:
        arr = np.stack([chunk.mean(axis=0) for chunk in np.array_split(arr, MAX_POINTS)])
    return arr[:, 0], arr[:, 1]


def _fit_errors(t: _Array, x: _Array) -> tuple[_Array, _Array, _Array, _Array, int]:
    """For each split ``k`` (baseline ``x[:k]``): the SSE of the step fit and of the ramp
    fit, each in total and after the split, and the first split tried (prefix and
    suffix sums, O(n))."""
    n = len(x)
    lo = max(4, n // 10)
    k = np.arange(lo, n - 2)
    c1, c2 = np.cumsum(x), np.cumsum(x * x)
    before_sum, before_sq = c1[k - 1], c2[k - 1]
    after_sum, after_sq = c1[-1] - before_sum, c2[-1] - before_sq
    m = n - k
    sse_before = before_sq - before_sum**2 / k
    step_after = after_sq - after_sum**2 / m
    mu0, t0 = before_sum / k, t[k - 1]
    s_t, s_tt, s_xt = (np.cumsum(a[::-1])[::-1][k] for a in (t, t * t, x * t))
    s_yu = s_xt - t0 * after_sum - mu0 * s_t + mu0 * t0 * m
    s_uu = s_tt - 2 * t0 * s_t + t0**2 * m
    s_yy = after_sq - 2 * mu0 * after_sum + mu0**2 * m
    ramp_after = s_yy - np.divide(s_yu**2, s_uu, out=np.zeros_like(s_uu), where=s_uu > 0)
    step_after, ramp_after = np.maximum(step_after, 0.0), np.maximum(ramp_after, 0.0)
    sse_before = np.maximum(sse_before, 0.0)
    return sse_before + step_after, step_after, sse_before + ramp_after, ramp_after, lo


def robust_noise(baseline: _Array) -> float:
    """Robust noise of a series: MAD of successive differences / sqrt(2) (a slow
    trend barely moves it).

    >>> robust_noise(np.arange(100.0)) == 0.0
    True
    """
    if len(baseline) < 3:
        return 0.0
    diffs = np.diff(baseline)
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / math.sqrt(2))


@dataclass(frozen=True)
class _Fit:
    split: int  # index of the first sample after the baseline
    sse_step: float
    sse_ramp: float
    unexplained: bool  # the better model leaves structure after the split


def _predicted_end(t: _Array, x: _Array, split: int, use_step: bool) -> float:
    """The chosen model's value at the last sample."""
    after = x[split:]
    if use_step:
        return float(after.mean())
    mu0 = float(x[:split].mean())
    u = t[split:] - t[split - 1]
    uu = float(u @ u)
    slope = float((after - mu0) @ u) / uu if uu > 0 else 0.0
    return mu0 + slope * float(u[-1])


def _best_split(t: _Array, x: _Array, floor: float) -> _Fit:
    """The better of the best step and the best ramp; ``unexplained`` when what follows
    the split is not that model plus noise (overall, or in its last samples)."""
    step, step_after, ramp, ramp_after, lo = _fit_errors(t, x)
    i_step, i_ramp = int(step.argmin()), int(ramp.argmin())
    use_step = step[i_step] <= ramp[i_ramp]
    i = i_step if use_step else i_ramp
    split = lo + i
    noise = max(robust_noise(x[split:]), floor)
    rms = math.sqrt(float((step_after if use_step else ramp_after)[i]) / (len(x) - split))
    departs = abs(float(np.median(x[-3:])) - _predicted_end(t, x, split, use_step))
    unexplained = rms > 3 * noise or departs > 4 * noise
    return _Fit(split, float(step[i_step]), float(ramp[i_ramp]), unexplained)


def _last_change(t: _Array, x: _Array, floor: float) -> tuple[int, _Fit]:
    """The most recent change: where the series left the level it has before its
    last change (an earlier incident in the window moves the baseline, not the answer).
    Returns the offset of the part searched and its fit."""
    offset = 0
    fit = _best_split(t, x, floor)
    for _ in range(_MAX_DEPTH):
        rest = len(x) - offset - fit.split
        if not fit.unexplained or rest < MIN_SAMPLES:
            break
        offset += fit.split
        fit = _best_split(t[offset:], x[offset:], floor)
    return offset, fit


def measure_change(samples: Samples) -> Change:
    """How a series left its baseline; no change when it has too few samples.

    >>> flat = [(i * 10_000, 50.0 + (i % 3) * 0.5) for i in range(120)]
    >>> climb = flat[:90] + [(t, v + (i + 1) * 1.5) for i, (t, v) in enumerate(flat[90:])]
    >>> c = measure_change(climb)
    >>> c.z > 10, c.ramp > 0.8, measure_change(flat).strength < 0.05
    (True, True, True)
    >>> earlier = [(t, v + 30 * (20 <= i < 50)) for i, (t, v) in enumerate(climb)]
    >>> measure_change(earlier).z > 10
    True
    """
    t, x = _prepare(samples)
    if len(x) < MIN_SAMPLES:
        return NO_CHANGE
    t = (t - t[0]) / max(t[-1] - t[0], 1.0)
    centre = float(np.median(x))
    scale = max(abs(centre), 1e-9)
    floor = 1e-3 * scale
    offset, fit = _last_change(t, x - centre, floor)
    baseline = x[offset:offset + fit.split]
    base = float(np.median(baseline))
    recent = float(np.median(x[-3:]))
    noise = max(robust_noise(baseline), floor)
    total = fit.sse_step + fit.sse_ramp
    return Change(z=(recent - base) / noise, change=(recent - base) / max(abs(base), 1e-9),
                  ramp=fit.sse_step / total if total > 0 else 0.5)


def _changes(series: Mapping[str, Samples]) -> dict[str, tuple[str, Change]]:
    """Per family, the metric with the strongest change and that change."""
    found: dict[str, tuple[str, Change]] = {}
    for metric in sorted(series):
        family = metric_family(metric)
        if family is None:
            continue
        change = measure_change(series[metric])
        if family not in found or change.strength > found[family][1].strength:
            found[family] = (metric, change)
    return found


def _steady(ramp: float) -> float:
    """How much a climb is steady: 0 up to ramp 0.25 (a jump), 1 from 0.75.

    >>> _steady(0.1), _steady(0.5), _steady(0.9)
    (0.0, 0.5, 1.0)
    """
    return min(max((ramp - 0.25) / 0.5, 0.0), 1.0)


def _scores(ch: Mapping[str, Change]) -> dict[str, float]:
    """Each rule's score from the families' changes (module docstring)."""
    def get(family: str) -> Change:
        return ch.get(family, NO_CHANGE)

    cpu_up = get("cpu").up()
    return {
        "memory_leak": get("memory").up() * _steady(get("memory").ramp),
        "disk_filling": get("disk").up() * (0.5 + 0.5 * get("disk").ramp),
        "cpu_spike": cpu_up * (1 - get("cpu").ramp),
        "latency_shift": get("latency").up() * (1 - get("latency").ramp) * (1 - cpu_up),
        "traffic_drop": get("traffic").down() * (1 - get("traffic").ramp),
    }


def classify(series: Mapping[str, Samples], metric: str | None = None) -> Classification:
    """The issue type of one resource from its recent ``series`` (metric name ->
    ``(ts_ms, value)`` samples); ``metric`` is the alert's, which weighs most.

    >>> ramp = [(i * 10_000, 50.0 + (i % 2) + max(0, i - 300) * 0.7) for i in range(360)]
    >>> flat = [(i * 10_000, 30.0 + (i % 2)) for i in range(360)]
    >>> found = classify({"memory_utilization": ramp, "cpu_utilization": flat})
    >>> found.issue_type, found.confidence > 0.8
    ('memory_leak', True)
    >>> classify({"memory_utilization": flat}).issue_type
    'unknown'
    """
    changes = _changes(series)
    scores = _scores({family: change for family, (_, change) in changes.items()})
    alert_family = metric_family(metric) if metric else None
    if alert_family is not None:
        scores = {rule: s * (1.0 if alert_family in _READS[rule] else OTHER_WEIGHT)
                  for rule, s in scores.items()}
    evidence = _evidence(changes, scores)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], ISSUE_TYPES.index(kv[0])))
    (best_rule, best), (_, second) = ranked[0], ranked[1]
    if best < MIN_SCORE:
        return Classification(UNKNOWN, round(0.5 * (1 - best / MIN_SCORE), 3), evidence)
    return Classification(best_rule, round(best * best / (best + second), 3), evidence)


def _evidence(changes: Mapping[str, tuple[str, Change]],
              scores: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric, change in changes.values():
        out[f"{metric}.z"] = round(change.z, 2)
        out[f"{metric}.change"] = round(change.change, 4)
        out[f"{metric}.ramp"] = round(change.ramp, 3)
    out.update({f"score.{rule}": round(s, 4) for rule, s in scores.items()})
    return out
