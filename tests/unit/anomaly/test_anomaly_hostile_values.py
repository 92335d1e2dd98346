"""Any finite value is valid input: none crashes the detector, none leaves it in a state its
checkpoint cannot hold (a refused checkpoint makes the series warm up again)."""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dharma.agents.anomaly.codec import CheckpointCodec, SeriesState
from dharma.agents.anomaly.logic import make_detector
from dharma.agents.anomaly.model.histogram import ValueHistogram

T0 = 1_700_000_000_000
CODEC = CheckpointCodec(lambda: make_detector(warmup=5))


def step(state: SeriesState, value: float, i: int) -> float:
    x = {"value": value, "timestamp": T0 + i * 60_000}
    score = state.detector.score_one(x)
    state.detector.learn_one(x)
    return score


def restored(state: SeriesState) -> SeriesState:
    """``state`` through its checkpoint (raises if the checkpoint is refused)."""
    back = CODEC.decode(CODEC.encode(state))
    assert CODEC.encode(back) == CODEC.encode(state)
    return back


def test_values_near_the_float_limit_leave_a_checkpoint_that_restores() -> None:
    """The red team's ±1e300: before, the baseline held NaN for a few samples (its
    profiles hold float32, differences overflowed) and a checkpoint written then was
    refused on restore, so the series warmed up again."""
    rng, state = random.Random(1), SeriesState(make_detector(warmup=5))
    for i in range(400):
        roll = rng.random()
        value = (1e300 if roll < 0.05 else -1e300 if roll < 0.1 else
                 1.7e308 if roll < 0.12 else 50.0 + rng.gauss(0.0, 1.0))
        assert 0.0 <= step(state, value, i) <= 1.0
        restored(state)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=80),
       st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=10))
def test_any_finite_values_score_in_the_unit_interval_and_checkpoint(
        values: list[float], after: list[float]) -> None:
    state = SeriesState(make_detector(warmup=5))
    for i, value in enumerate(values):
        assert 0.0 <= step(state, value, i) <= 1.0
    back = restored(state)
    for i, value in enumerate(after, len(values)):
        assert repr(step(back, value, i)) == repr(step(state, value, i))


def test_a_flat_series_with_subnormal_values_keeps_its_histogram() -> None:
    """A span of subnormals has bins of width 0: the counts are a point mass, not a
    division by zero (the red team's ``ValueHistogram._spread`` crash)."""
    h = ValueHistogram(bins=32, memory=1000)
    values: list[Any] = [0.0] * 300 + [5e-324, 5e-324] + [0.0] * 20 + [1.0] * 20
    for v in values:
        h.learn(v)
    assert math.isclose(sum(h.counts), h.total, rel_tol=1e-4)
    assert h.surprise(1.0) < 1.0
