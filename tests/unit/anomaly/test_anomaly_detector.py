"""Unit tests of the per-series anomaly detector (pure logic)."""

from __future__ import annotations

import doctest
import math
import pickle
import random
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import checks

from dharma.agents.anomaly import (
    ANOMALY_THRESHOLD,
    DetectorConfig,
    SeriesDetector,
    logic,
    make_detector,
)
from dharma.agents.anomaly.model import baseline, detector, histogram, likelihood, timebase

T0 = datetime(2024, 1, 1)
STEP = timedelta(minutes=5)


def feed(det: SeriesDetector, values: list[float], start: int = 0) -> list[float]:
    """Score then learn each value at 5-minute steps; return the scores."""
    out = []
    for i, v in enumerate(values, start):
        x = {"value": v, "timestamp": T0 + i * STEP}
        out.append(det.score_one(x))
        det.learn_one(x)
    return out


def noise(n: int, seed: int = 1, sd: float = 1.0, mean: float = 50.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


@pytest.mark.parametrize("module", [logic, baseline, detector, histogram, likelihood, timebase])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


def test_river_conventions() -> None:
    det = make_detector()
    for check in (checks.common.check_repr, checks.common.check_clone_same_class,
                  checks.common.check_clone_is_idempotent,
                  checks.common.check_init_default_params_are_not_mutable,
                  checks.common.check_doc, checks.common.check_pickling_supports_roundtrip,
                  checks.common.check_repr_roundtrips_clone,
                  checks.common.check_get_params_matches_signature):
        check(det.clone())


def test_config_builds_the_same_detector() -> None:
    assert repr(DetectorConfig().build()) == repr(make_detector())
    assert make_detector(suppress=7).suppress == 7


def test_scores_in_unit_interval_and_warmup_flagged() -> None:
    det = make_detector()
    first = det.score_detail({"value": 1.0, "timestamp": T0})
    assert first.state == "warming_up" and first.confidence == 0.0
    scores = feed(det, noise(400))
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores[: det.warmup]) < ANOMALY_THRESHOLD  # no alert while warming up
    assert not det.warming_up and det.confidence == 1.0


def test_spike_and_level_shift_are_detected() -> None:
    det = make_detector()
    feed(det, noise(600))
    assert det.score_one({"value": 80.0, "timestamp": T0 + 600 * STEP}) >= ANOMALY_THRESHOLD
    det = make_detector()
    feed(det, noise(600))
    shifted = feed(det, noise(40, seed=2, mean=58.0), start=600)
    assert max(shifted) >= ANOMALY_THRESHOLD


def test_stationary_noise_rarely_alerts() -> None:
    det = make_detector()
    scores = feed(det, noise(3000, seed=3))
    assert sum(s >= ANOMALY_THRESHOLD for s in scores) <= 3


def test_daily_pattern_is_learned_and_a_missing_peak_is_anomalous() -> None:
    def day(i: int) -> float:
        return 10.0 + (30.0 if 96 <= i % 288 < 144 else 0.0)

    rng = random.Random(4)
    values = [day(i) + rng.gauss(0, 0.5) for i in range(288 * 6)]
    det = make_detector()
    scores = feed(det, values)
    assert sum(s >= ANOMALY_THRESHOLD for s in scores[288 * 3:]) <= 2  # routine peaks
    feed(det, values[:96], start=288 * 6)  # the seventh night ...
    nxt = {"value": 10.0, "timestamp": T0 + (288 * 6 + 96) * STEP}
    assert det.score_detail(nxt).expected > 30  # ... then a peak is expected
    missing = feed(det, [10.0 + rng.gauss(0, 0.5) for _ in range(48)], start=288 * 6 + 96)
    assert max(missing) >= ANOMALY_THRESHOLD


def test_series_stuck_at_a_level_it_only_crossed_is_anomalous() -> None:
    """A two-level series that stays between its levels: the residual channel has
    followed it within a few samples, the value-distribution channel has not."""
    rng = random.Random(5)
    values = [(0.0 if (i // 20) % 2 else 100.0) + rng.gauss(0, 1.0) for i in range(2000)]
    det, off = make_detector(), make_detector(hist_bins=0)
    feed(det, values)
    feed(off, values)
    stuck = [50.0 + rng.gauss(0, 1.0) for _ in range(60)]
    assert max(feed(det, stuck, start=2000)) >= ANOMALY_THRESHOLD
    assert max(feed(off, stuck, start=2000)[20:]) < ANOMALY_THRESHOLD  # residual alone: absorbed


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=300), st.floats(-1e6, 1e6))
def test_histogram_surprise_is_bounded_and_lazy_decay_is_exact(
        values: list[int], probe: float) -> None:
    lazy = histogram.ValueHistogram(bins=8, memory=20)
    for v in (0, 0, 7, 7):  # the range is [0.5, 7.5] from now on: no re-binning
        lazy.learn(v + 0.5)
    eager = [c / lazy.weight for c in lazy.counts]  # decayed eagerly from here
    values = [x for v in values for x in (v, 0, 7)]  # both ends recur: the range stays
    for v in values:
        lazy.learn(v + 0.5)
        eager = [c * lazy.decay for c in eager]
        eager[v] += 1.0
    assert 0.0 <= lazy.surprise(probe) <= 1.0
    want = max(0.0, 1.0 - eager[lazy._index(probe)] / sum(eager) * 8)
    assert lazy.surprise(probe) == pytest.approx(want, abs=1e-4)


def test_nan_and_inf_are_flagged_and_not_learned() -> None:
    det = make_detector()
    feed(det, noise(300))
    before = pickle.dumps(det._baseline), det._n
    for bad in (math.nan, math.inf, -math.inf, None, "x"):
        x = {"value": bad, "timestamp": T0 + 300 * STEP}
        detail = det.score_detail(x)
        assert detail.state == "invalid" and detail.score == 0.0
        det.learn_one(x)
    assert (pickle.dumps(det._baseline), det._n) == before


def test_late_and_duplicate_timestamps_do_not_poison() -> None:
    det = make_detector()
    feed(det, noise(300))
    before = pickle.dumps(det._baseline)
    for back in (0, 1, 50):  # duplicate, one step late, far in the past
        x = {"value": 1e6, "timestamp": T0 + (299 - back) * STEP}
        assert 0.0 <= det.score_one(x) <= 1.0
        det.learn_one(x)
    assert pickle.dumps(det._baseline) == before
    feed(det, noise(5, seed=9), start=300)  # and learning resumes on time


def test_clock_that_goes_back_for_good_is_followed() -> None:
    det = make_detector()
    feed(det, noise(300))
    n = det._n
    feed(det, noise(20, seed=5), start=-1000)  # the series restarted in the past
    assert det._n > n


def test_cadence_change_adapts() -> None:
    det = make_detector()
    feed(det, noise(400))
    assert det._clock.interval == 300.0
    for i in range(40):
        x = {"value": 50.0, "timestamp": T0 + 400 * STEP + i * timedelta(minutes=1)}
        det.score_one(x)
        det.learn_one(x)
    assert det._clock.interval == 60.0


def test_works_without_timestamps_and_with_epoch_ms() -> None:
    det = make_detector()
    for i, v in enumerate(noise(300)):
        for x in ({"value": v}, {"value": v, "timestamp": 1_700_000_000_000 + i * 300_000}):
            assert 0.0 <= det.score_one(x) <= 1.0
            det.learn_one(x)


def test_pickle_roundtrip_continues_identically() -> None:
    det = make_detector()
    feed(det, noise(500))
    copy = pickle.loads(pickle.dumps(det))
    tail = noise(200, seed=7)
    assert feed(det, tail, start=500) == feed(copy, tail, start=500)


def test_memory_per_series_is_bounded() -> None:
    det = make_detector()
    feed(det, noise(288 * 8))
    assert len(pickle.dumps(det)) <= 20_000


def test_anomalies_do_not_poison_the_baseline() -> None:
    clean, dirty = make_detector(), make_detector()
    values = noise(600)
    feed(clean, values)
    feed(dirty, [500.0 if i % 97 == 50 else v for i, v in enumerate(values)])
    assert abs(clean._baseline.predict(None) - dirty._baseline.predict(None)) < 1.0
    assert dirty._baseline.scale < 2 * clean._baseline.scale


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-10**6, 10**6).map(float)), max_size=120))
def test_any_input_gives_a_score_in_unit_interval(values: list[float]) -> None:
    det = make_detector(warmup=5)
    for s in feed(det, values):
        assert 0.0 <= s <= 1.0


def test_noise_on_a_drifting_level_sets_new_extremes_without_alerts() -> None:
    """New extremes of plain noise (early in a series' life, on a slow drift) are not
    spatial anomalies; a jump of many noise spreads beyond the range still is."""
    import random

    from dharma.agents.anomaly.logic import ANOMALY_THRESHOLD, DetectorConfig

    rng = random.Random(7)
    det, fired = DetectorConfig().build(), []
    for i in range(400):
        x = {"value": 40.0 + 0.01 * i + rng.gauss(0.0, 2.0), "timestamp": i * 10_000}
        if det.score_detail(x).state == "ready" and det.score_one(x) >= ANOMALY_THRESHOLD:
            fired.append(i)
        det.learn_one(x)
    assert not fired
    assert det.score_one({"value": 70.0, "timestamp": 400 * 10_000}) >= ANOMALY_THRESHOLD

