"""One outlier must not blind a series: the range, the histogram's bins and the scale
floor forget, and a single point's influence on them is bounded (issue #10, item 10)."""

from __future__ import annotations

import doctest
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dharma.agents.anomaly.logic import ANOMALY_THRESHOLD, make_detector
from dharma.agents.anomaly.model import extremes
from dharma.agents.anomaly.model.extremes import RecentRange
from dharma.agents.anomaly.model.histogram import ValueHistogram

SHIFT_AT, SHIFT_LEN = 600, 100
STEP_MS = 300_000


def shift_delay(seed: int, spike: tuple[int, float] | None = None) -> int | None:
    """Samples from the onset of a +8 sigma level shift on 50 +- 1 to its first score at
    or above the threshold (``None``: never within its 100 samples); ``spike = (i, v)``
    replaces sample ``i`` by ``v``."""
    rng, det = random.Random(seed), make_detector()
    for i in range(SHIFT_AT + SHIFT_LEN):
        value = 50.0 + rng.gauss(0.0, 1.0) + (8.0 if i >= SHIFT_AT else 0.0)
        if spike is not None and i == spike[0]:
            value = spike[1]
        x = {"value": value, "timestamp": i * STEP_MS}
        score = det.score_one(x)
        det.learn_one(x)
        if i >= SHIFT_AT and score >= ANOMALY_THRESHOLD:
            return i - SHIFT_AT
    return None


def test_doctests() -> None:
    assert doctest.testmod(extremes).failed == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_earlier_extreme_spike_does_not_delay_a_level_shift(seed: int) -> None:
    """The issue's case: one value of 5,000 on a series at 50 +- 1, then a +8 sigma shift."""
    clean = shift_delay(seed)
    spiked = shift_delay(seed, (300, 5000.0))
    assert clean is not None and spiked is not None
    assert abs(spiked - clean) <= 3


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(160, SHIFT_AT - 110),
       st.sampled_from([5e3, -5e3, 1e9, -1e9, 80.0]))
def test_no_single_point_blinds_the_detector(seed: int, at: int, value: float) -> None:
    """Wherever after warm-up, however extreme: the shift is seen as quickly (+-3)."""
    clean, spiked = shift_delay(seed), shift_delay(seed, (at, value))
    assert clean is not None and spiked is not None
    assert abs(spiked - clean) <= 3


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=200), st.floats(-1e300, 1e300),
       st.integers(0, 199))
def test_one_point_moves_the_range_no_further_than_the_other_values(
        values: list[float], outlier: float, at: int) -> None:
    r = RecentRange(memory=1000)
    at = min(at, len(values))
    for v in [*values[:at], outlier, *values[at:]]:
        r.learn(v)
    assert min(values) <= r.lo <= r.hi <= max(values)


def test_the_range_forgets_after_its_memory() -> None:
    r = RecentRange(memory=400, blocks=8)
    for i in range(1000):
        r.learn(1000.0 + i % 7)  # an old level
    for i in range(450):
        r.learn(float(i % 5))
    assert (r.lo, r.hi) == (0.0, 4.0)


def test_the_scale_floor_follows_the_range_not_an_outlier() -> None:
    rng, det = random.Random(4), make_detector()
    for i in range(400):
        value = 5000.0 if i == 200 else 50.0 + rng.gauss(0.0, 1.0)
        x = {"value": value, "timestamp": i * STEP_MS}
        det.score_one(x)
        det.learn_one(x)
    assert det._range.hi - det._range.lo < 10.0
    near = det.score_detail({"value": 58.0, "timestamp": 400 * STEP_MS})
    assert near.uncapped >= ANOMALY_THRESHOLD


def test_histogram_bins_resolve_the_series_after_an_outlier_and_follow_a_new_range() -> None:
    h = ValueHistogram(bins=16, memory=500)
    for i in range(1000):
        h.learn(float(i % 2))  # a two-level series
    h.learn(1e9)
    assert (h.surprise(0.5), h.surprise(1.0)) == (1.0, 0.0)
    for i in range(1000):
        h.learn(100.0 + (i % 2) * 10.0)  # a new pair of levels, the old ones forgotten
    assert h.hi - h.lo <= 10.0 + 1e-9
    assert h.surprise(105.0) > 0.8 and h.surprise(110.0) == 0.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300))
def test_histogram_rebinning_keeps_the_mass(values: list[float]) -> None:
    h = ValueHistogram(bins=8, memory=20)
    for v in values:
        h.learn(v)
    assert sum(h.counts) == pytest.approx(h.total, rel=1e-4)
    assert all(c >= -1e-3 * h.total for c in h.counts)
