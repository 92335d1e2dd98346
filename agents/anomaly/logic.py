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

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from dharma.agents.anomaly.model.detector import (
    ANOMALY_THRESHOLD,
    LATE,
    QUIET_CAP,
    Sample,
    ScoreDetail,
    SeriesDetector,
)
from dharma.streams.alerting import (
    AlertPolicy,
    Episode,
    Notice,
    Silence,
    alert_record,
    close,
    is_silenced,
    step,
)
from dharma.streams.records import MetricSample
from dharma.streams.settings import WorkerSettings

__all__ = [
    "ANOMALY_THRESHOLD",
    "KIND",
    "QUIET_CAP",
    "BatchStep",
    "DetectorConfig",
    "MemoryStates",
    "Observation",
    "Sample",
    "ScoreDetail",
    "Scored",
    "SeriesDetector",
    "SeriesState",
    "alert_policy",
    "anomaly_alert",
    "close_idle_episode",
    "expected_band",
    "follow_episode",
    "is_anomaly",
    "make_detector",
    "observe",
    "prediction",
]

logger = logging.getLogger(__name__)

KIND = "anomaly"
MODEL = "dharma-likelihood/1"
PREDICTION_BRANCH = "dharma.predictions.AnomalyPrediction"
#: Half-width of the expected band of a prediction, in residual scales: a display of
#: where the baseline expects values, not the threshold (scores are calibrated
#: likelihoods of two channels and of the recent range, not a fixed number of scales).
BAND_SCALES = 3.0


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


@dataclass
class SeriesState:
    """What the anomaly capability keeps per series: its detector and its alert episode."""

    detector: SeriesDetector
    alert: Episode = field(default_factory=Episode)


def observe(state: SeriesState, x: Sample,
            new_detector: Callable[[], SeriesDetector], series: str = "") -> ScoreDetail:
    """Score, then learn, ``x`` with the series' detector; the score.

    A detector that fails (a bug: it must not stop the stream) is replaced by a
    fresh one, which warms up; the series' alert episode is kept, so an open alert
    still resolves when the series is back to normal.
    """
    try:
        detail = state.detector.score_detail(x)
        state.detector.learn_one(x)
    except Exception:
        logger.exception("detector failed series=%s: starting it afresh", series)
        state.detector = new_detector()
        detail = state.detector.score_detail(x)
        state.detector.learn_one(x)
    return detail


def anomaly_alert(notice: Notice, policy: AlertPolicy, summary: str | None = None
                  ) -> dict[str, Any]:
    """The ``alerts.notifications`` record of an episode's notice."""
    ep = notice.episode
    source, metric = ep.source, ep.subject
    if summary is None:
        minutes = (notice.ts - notice.start) / 60_000
        summary = (f"{metric} on {source} is anomalous (peak score {ep.peak:.2f})"
                   if notice.status == "firing" else
                   f"{metric} on {source} back to normal after {minutes:.1f} min")
    return alert_record(kind=KIND, component=KIND, source=source, subject=metric,
                        status=notice.status, severity=ep.severity(policy, notice.ts),
                        summary=summary, ts=notice.ts, episode_start=notice.start,
                        labels={"metric": metric})


def follow_episode(state: Episode, policy: AlertPolicy, source: str, metric: str, ts: int,
                   detail: ScoreDetail) -> tuple[Episode, dict[str, Any] | None]:
    """Advance a series' alert episode by one scored sample; the alert to send, if any.

    The episode follows the series' real state, ``detail.anomalous`` (the uncapped
    evidence, and whether the series is still off its pre-episode level), not the
    score capped for hygiene: a suppressed sample of an ongoing incident keeps it
    firing.  A late sample (a replay or an out-of-order point) neither keeps it
    firing nor counts toward the quiet period.

    >>> det, s, sent = make_detector(), Episode(), []
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
    state, notice = step(state, policy, source, metric, ts, detail.uncapped, detail.anomalous)
    return state, anomaly_alert(notice, policy) if notice else None


def close_idle_episode(series: str, state: Episode,
                       policy: AlertPolicy) -> dict[str, Any] | None:
    """The ``resolved`` alert of the open episode of ``series`` (``source|metric``, the
    key of :attr:`~dharma.streams.records.MetricSample.series`) as it is forgotten, or
    ``None``.  The names come from the episode's checkpoint, so they must be this
    series': a checkpoint naming another series resolves nothing (fail closed).

    >>> policy = AlertPolicy()
    >>> s, _ = step(Episode(), policy, "web-01", "cpu", 60_000, 0.9, True)
    >>> close_idle_episode("web-01|cpu", s, policy)["status"]
    'resolved'
    >>> close_idle_episode("db-01|cpu", s, policy) is None
    True
    """
    if f"{state.source}|{state.subject}" != series:
        return None
    notice = close(state)
    if notice is None:
        return None
    minutes = (notice.ts - notice.start) / 60_000
    return anomaly_alert(notice, policy, f"{state.subject} on {state.source} stopped "
                         f"reporting {minutes:.1f} min into an anomalous episode; closed")


def prediction(obs: Observation, detail: ScoreDetail) -> tuple[str, dict[str, Any]]:
    """The ``ml.predictions`` record for one scored sample (union branch, value)."""
    ready = detail.state == "ready"
    lower, upper = expected_band(detail)
    return PREDICTION_BRANCH, {
        "kind": KIND, "prediction_id": f"{obs.series}@{obs.ts}",
        "source": obs.source, "metric": obs.metric, "ts": obs.ts,
        "value": obs.value, "model": MODEL, "anomaly_score": float(detail.score),
        "is_anomaly": ready and is_anomaly(detail.score),
        "warming_up": detail.state == "warming_up", "confidence": float(detail.confidence),
        "expected": detail.expected if detail.expected == detail.expected else None,  # NaN
        "lower": lower, "upper": upper,
    }


def expected_band(detail: ScoreDetail) -> tuple[float | None, float | None]:
    """``expected`` plus and minus :data:`BAND_SCALES` residual scales; None without a
    baseline.

    >>> expected_band(ScoreDetail(0.1, "ready", 1.0, 0.1, 50.0, scale=2.0))
    (44.0, 56.0)
    """
    expected, scale = detail.expected, detail.scale
    if not (math.isfinite(expected) and math.isfinite(scale)):
        return None, None
    return expected - BAND_SCALES * scale, expected + BAND_SCALES * scale


class Observation(NamedTuple):
    """One sample of a series as the batch step reads it: its names, time (epoch ms) and
    value, and ``x``, the detector's input (``{"value", "timestamp"}``; a replayed file
    may carry a datetime, or an unreadable time as None)."""

    series: str
    source: str
    metric: str
    ts: int
    value: float
    x: Sample

    @classmethod
    def of(cls, sample: MetricSample) -> Observation:
        """The observation of a validated ``metrics.raw`` sample."""
        return cls(sample.series, sample.source, sample.metric, sample.ts, sample.value,
                   {"value": sample.value, "timestamp": sample.ts})


Ref = TypeVar("Ref")
Ref_contra = TypeVar("Ref_contra", contravariant=True)


class SeriesStates(Protocol[Ref_contra]):
    """Where the batch step finds a series' state (``ref``: what the store needs to
    place it, e.g. the event it came in; the agent's is a checkpointed table)."""

    def get(self, series: str, ref: Ref_contra) -> SeriesState: ...


class MemoryStates:
    """Series states in a dict, each created on first use: the batch step's state for a
    replay (``dharma detect``) and for tests."""

    def __init__(self, new_detector: Callable[[], SeriesDetector] = DetectorConfig().build,
                 states: dict[str, SeriesState] | None = None) -> None:
        self.new_detector = new_detector
        self.states = states if states is not None else {}

    def get(self, series: str, ref: object = None) -> SeriesState:
        state = self.states.get(series)
        if state is None:
            state = self.states[series] = SeriesState(self.new_detector())
        return state


@dataclass
class Scored:
    """What a batch produced: predictions (key, (branch, record)), the alerts to send (not
    silenced), the series whose episode changed (to checkpoint at once), the scores."""

    predictions: list[tuple[str, tuple[str, dict[str, Any]]]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    scores: list[float] = field(default_factory=list)


@dataclass
class BatchStep(Generic[Ref]):
    """The anomaly capability's batch step: scores, then learns, each sample in order
    and follows its series' alert episode.  The agent, ``dharma detect`` and the tests
    all run this one.

    Parameters
    ----------
    states
        Each series' state (detector and episode).
    new_detector
        A fresh detector of the worker's configuration (replaces one that fails).
    policy
        When episodes fire, repeat and resolve.
    """

    states: SeriesStates[Ref]
    new_detector: Callable[[], SeriesDetector]
    policy: AlertPolicy = field(default_factory=AlertPolicy)

    def __call__(self, samples: Iterable[tuple[Ref, Observation]],
                 silences: Sequence[Silence] = (), now_ms: int = 0) -> Scored:
        """Score a batch; alerts matching an active silence (at ``now_ms``) still move
        their episode but are not sent."""
        out, policy = Scored(), self.policy
        for ref, obs in samples:
            state = self.states.get(obs.series, ref)
            detail = observe(state, obs.x, self.new_detector, obs.series)
            out.predictions.append((obs.series, prediction(obs, detail)))
            out.scores.append(detail.score)
            state.alert, alert = follow_episode(state.alert, policy, obs.source, obs.metric,
                                                obs.ts, detail)
            if alert:
                out.changed.add(obs.series)
                if not is_silenced(silences, obs.source, obs.metric, KIND, now_ms):
                    out.alerts.append(alert)
        return out

    def evicted(self, series: str, state: SeriesState, silences: Sequence[Silence] = (),
                now_ms: int = 0) -> dict[str, Any] | None:
        """The ``resolved`` alert to send as ``series`` is forgotten with an open episode
        (None: none open, silenced, or an episode naming another series: logged)."""
        alert = close_idle_episode(series, state.alert, self.policy)
        if alert is None:
            if state.alert.firing_since is not None:
                logger.warning("open episode of evicted series=%s names another series: "
                               "not resolved", series)
            return None
        if is_silenced(silences, alert["source"], alert["labels"]["subject"], KIND, now_ms):
            return None
        logger.info("resolved the open episode of evicted series=%s", series)
        return alert


def alert_policy(worker: WorkerSettings) -> AlertPolicy:
    """The alert policy of ``DHARMA_WORKER_ALERT_*``."""
    return AlertPolicy(repeat_interval_ms=round(worker.alert_repeat_interval_s * 1000),
                       resolve_after=worker.alert_resolve_after,
                       resolve_after_ms=round(worker.alert_resolve_after_s * 1000))
