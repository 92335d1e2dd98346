"""Properties of the validation agent's per-series statistics."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.validation.logic import SeriesStats, fold

values = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
alphas = st.floats(min_value=0.001, max_value=1.0)


@st.composite
def in_order_samples(draw: st.DrawFn, max_size: int = 40) -> list[tuple[float, int]]:
    """Samples with strictly increasing timestamps."""
    vals = draw(st.lists(values, max_size=max_size))
    steps = draw(st.lists(st.integers(1, 10_000), min_size=len(vals), max_size=len(vals)))
    start = draw(st.integers(0, 2**40))
    ts, out = start, []
    for v, step in zip(vals, steps, strict=True):
        ts += step
        out.append((v, ts))
    return out


@st.composite
def with_replays(draw: st.DrawFn) -> tuple[list[tuple[float, int]], list[tuple[float, int]], int]:
    """In-order samples, the same with replays interleaved, and how many replays."""
    samples = draw(in_order_samples())
    mixed: list[tuple[float, int]] = []
    replays = 0
    for i, sample in enumerate(samples):
        mixed.append(sample)
        n = draw(st.integers(0, 2))
        for _ in range(n):
            # a duplicate or an older sample, possibly with a different value
            j = draw(st.integers(0, i))
            value = draw(st.one_of(st.just(samples[j][0]), values))
            mixed.append((value, samples[j][1]))
        replays += n
    return samples, mixed, replays


@given(with_replays(), alphas)
def test_replays_never_change_the_stats_except_skipped(
    case: tuple[list[tuple[float, int]], list[tuple[float, int]], int], alpha: float
) -> None:
    samples, mixed, replays = case
    clean = fold(SeriesStats.empty(), samples, alpha)
    replayed = fold(SeriesStats.empty(), mixed, alpha)
    assert replayed.skipped == clean.skipped + replays
    assert replayed == SeriesStats(**{**clean.to_dict(), "skipped": replayed.skipped})


@given(in_order_samples(), alphas)
def test_replaying_the_whole_history_changes_nothing(
    samples: list[tuple[float, int]], alpha: float
) -> None:
    once = fold(SeriesStats.empty(), samples, alpha)
    twice = fold(once, samples, alpha)
    assert twice.skipped == len(samples)
    assert twice.to_dict() == {**once.to_dict(), "skipped": len(samples)}


@given(in_order_samples(), alphas)
def test_mean_within_range_and_variance_non_negative(
    samples: list[tuple[float, int]], alpha: float
) -> None:
    stats = SeriesStats.empty()
    seen: list[float] = []
    for value, ts in samples:
        stats = stats.update(value, ts, alpha)
        seen.append(value)
        lo, hi = min(seen), max(seen)
        slack = 1e-9 * max(1.0, abs(lo), abs(hi))
        assert lo - slack <= stats.mean <= hi + slack
        assert stats.var >= 0.0
        assert math.isfinite(stats.std)
        assert stats.last_value == value and stats.last_ts == ts
    assert stats.count == len(samples)


@given(in_order_samples(), alphas)
def test_dict_round_trip_is_json_serialisable(
    samples: list[tuple[float, int]], alpha: float
) -> None:
    stats = fold(SeriesStats.empty(), samples, alpha)
    text = json.dumps(stats.to_dict(), allow_nan=False)
    assert SeriesStats.from_dict(json.loads(text)) == stats


def test_empty_state_round_trips() -> None:
    empty = SeriesStats.empty()
    assert SeriesStats.from_dict(None) == empty
    assert SeriesStats.from_dict({}) == empty
    assert SeriesStats.from_dict(json.loads(json.dumps(empty.to_dict(), allow_nan=False))) == empty


def test_constant_series_has_zero_variance() -> None:
    stats = fold(SeriesStats.empty(), [(5.0, t) for t in range(1, 50)], alpha=0.3)
    assert stats.mean == 5.0 and stats.var == 0.0 and stats.count == 49
