"""Per-series online anomaly detection: the pure logic the anomaly agent calls.

One :class:`SeriesDetector` per ``(source, metric)`` series, river API
(``score_one`` before ``learn_one``), seeded, constructor-configured and
picklable. Scores are in [0, 1] and calibrated so that one constant,
:data:`ANOMALY_THRESHOLD` (0.5), serves every series: a score of 0.5 means the
recent surprise of the series has a tail probability of about 1e-5 under the
series' own history of surprise (design and NAB results: ``docs/anomaly.md``).

Examples
--------
>>> det = make_detector()
>>> x = {"value": 1.0, "timestamp": 1_700_000_000_000}
>>> det.score_detail(x).state, det.score_one(x) < ANOMALY_THRESHOLD
('warming_up', True)
>>> det.learn_one(x)
>>> det.confidence > 0
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dharma.agents.anomaly.alerts import AlertPolicy, AlertState, resolve_idle, step
from dharma.agents.anomaly.model.detector import (
    ANOMALY_THRESHOLD,
    LATE,
    QUIET_CAP,
    ScoreDetail,
    SeriesDetector,
)

__all__ = [
    "ANOMALY_THRESHOLD",
    "QUIET_CAP",
    "DetectorConfig",
    "ScoreDetail",
    "SeriesDetector",
    "close_idle_episode",
    "follow_episode",
    "is_anomaly",
    "make_detector",
]


@dataclass(frozen=True)
class DetectorConfig:
    """Constructor arguments of :class:`SeriesDetector`, as one settings value.

    The defaults are the single configuration used for every series (each is
    explained in ``docs/anomaly.md``).

    Examples
    --------
    >>> DetectorConfig(suppress=50).build().suppress
    50
    """

    warmup: int = 150
    fast_alpha: float = 0.05
    slow_alpha: float = 0.002
    season_gamma: float = 0.25
    scale_alpha: float = 0.01
    clip: float = 8.0
    accept: int = 10
    surprise_half: float = 3.0
    short: int = 10
    window: int = 8640
    min_std: float = 0.02
    spatial_tolerance: float = 0.05
    suppress: int = 100
    seed: int = 0
    hist_bins: int = 32
    spatial_tail: float = 1e-5
    range_rank: int = 3

    def build(self) -> SeriesDetector:
        """A fresh detector with this configuration."""
        return SeriesDetector(**asdict(self))


def make_detector(**overrides: Any) -> SeriesDetector:
    """A fresh detector with the default configuration, optionally overridden.

    This is the factory ``run_detector.py --callable`` and the CLI use.
    """
    return DetectorConfig(**overrides).build()


def is_anomaly(score: float) -> bool:
    """``True`` when ``score`` crosses :data:`ANOMALY_THRESHOLD`.

    >>> is_anomaly(0.5), is_anomaly(0.49)
    (True, False)
    """
    return score >= ANOMALY_THRESHOLD


def follow_episode(state: AlertState, policy: AlertPolicy, source: str, metric: str, ts: int,
                   detail: ScoreDetail) -> tuple[AlertState, dict[str, Any] | None]:
    """Advance a series' alert episode by one scored sample; the alert to send, if any.

    The episode follows the series' real state, ``detail.anomalous`` (the uncapped
    evidence, and whether the series is still off its pre-episode level), not the
    score capped for hygiene: a suppressed sample of an ongoing incident keeps it
    firing.  A late sample (a replay or an out-of-order point) neither keeps it
    firing nor counts toward the quiet period.

    >>> det, s, sent = make_detector(), AlertState(), []
    >>> for i in range(400):  # 300 quiet samples a minute apart, then a shift that lasts
    ...     x = {"value": (i % 3) * 0.1 + (5.0 if i >= 300 else 0.0), "timestamp": i * 60_000}
    ...     s, alert = follow_episode(s, AlertPolicy(), "web-01", "cpu", i * 60_000,
    ...                               det.score_detail(x))
    ...     det.learn_one(x)
    ...     sent += [(alert["status"], i)] if alert else []
    >>> sent  # fired at the onset, still firing (sent again) an hour later, not resolved
    [('firing', 300), ('firing', 360)]
    """
    if detail.state == LATE:
        return state, None
    return step(state, policy, source, metric, ts, detail.uncapped, detail.anomalous)


def close_idle_episode(series: str, state: AlertState,
                       policy: AlertPolicy) -> dict[str, Any] | None:
    """The ``resolved`` alert of the open episode of ``series`` (``source|metric``, the
    key of :attr:`~dharma.streams.records.MetricSample.series`) as it is forgotten, or
    ``None``.  The names come from the episode's checkpoint, so they must be this
    series': a checkpoint naming another series resolves nothing (fail closed).

    >>> policy = AlertPolicy()
    >>> s, _ = step(AlertState(), policy, "web-01", "cpu", 60_000, 0.9, True)
    >>> close_idle_episode("web-01|cpu", s, policy)["status"]
    'resolved'
    >>> close_idle_episode("db-01|cpu", s, policy) is None
    True
    """
    if f"{state.source}|{state.metric}" != series:
        return None
    return resolve_idle(state, policy)
