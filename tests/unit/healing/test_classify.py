"""The issue classifier: one shape per issue type, the seed example, properties."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dharma.agents.healing.classify import ISSUE_TYPES, UNKNOWN, classify, measure_change

TICK_MS = 10_000
HOUR = 360  # samples of an hour at 10 s
Samples = list[tuple[int, float]]


def series(shape: Callable[[int], float], noise: float, seed: int = 1,
           n: int = HOUR) -> Samples:
    rng = random.Random(seed)
    return [(i * TICK_MS, shape(i) + rng.gauss(0.0, noise)) for i in range(n)]


def flat(level: float) -> Callable[[int], float]:
    return lambda i: level


def seed_example() -> dict[str, Samples]:
    """The seed's web-server-01: memory climbing to 92 % over 40 minutes, the rest normal."""
    return {"memory_utilization": series(lambda i: 45 + max(0, i - 120) * 47 / 240, 0.7),
            "cpu_utilization": series(flat(40), 2.0, seed=2),
            "request_latency_ms": series(flat(120), 6.0, seed=3),
            "requests_per_second": series(flat(200), 6.0, seed=4)}


def test_the_seed_example_is_a_memory_leak_with_high_confidence() -> None:
    found = classify(seed_example(), "memory_utilization")
    assert found.issue_type == "memory_leak"
    assert found.confidence >= 0.85
    assert found.evidence["memory_utilization.ramp"] > 0.8
    assert found.evidence["memory_utilization.z"] > 20


STEP = 350  # the last 10 samples changed


@pytest.mark.parametrize(("metrics", "alert_metric", "expected"), [
    ({"request_latency_ms": series(lambda i: 120 * (2.5 if i >= STEP else 1), 6),
      "cpu_utilization": series(flat(40), 2, seed=2)}, "request_latency_ms", "latency_shift"),
    ({"request_latency_ms": series(lambda i: 120 * (2 if i >= STEP else 1), 6),
      "cpu_utilization": series(lambda i: 40 + 45 * (i >= STEP), 2, seed=2)},
     "request_latency_ms", "cpu_spike"),
    ({"cpu_utilization": series(lambda i: 30 + 50 * (i >= STEP), 1.5)}, None, "cpu_spike"),
    ({"disk_utilization": series(lambda i: 50 + max(0, i - 300) * 0.5, 0.15)},
     "disk_utilization", "disk_filling"),
    ({"requests_per_second": series(lambda i: 200 * (0.3 if i >= STEP else 1), 6),
      "cpu_utilization": series(lambda i: 40 * (0.5 if i >= STEP else 1), 2, seed=2)},
     "requests_per_second", "traffic_drop"),
    ({"memory_utilization": series(flat(50), 0.7),
      "cpu_utilization": series(flat(40), 2, seed=2)}, "memory_utilization", UNKNOWN),
])
def test_each_shape_names_its_issue(metrics: dict[str, Samples], alert_metric: str | None,
                                    expected: str) -> None:
    found = classify(metrics, alert_metric)
    assert found.issue_type == expected, found.evidence
    if expected == UNKNOWN:
        assert found.confidence <= 0.5
    else:
        assert found.confidence > 0.6


def test_a_memory_jump_is_not_a_leak() -> None:
    jump = {"memory_utilization": series(lambda i: 45 + 30 * (i >= STEP), 0.7)}
    assert classify(jump, "memory_utilization").issue_type != "memory_leak"


def test_an_earlier_incident_in_the_hour_does_not_hide_the_current_one() -> None:
    def disk(i: int) -> float:  # filled and cleaned up 40 minutes ago, now climbing again
        return 45 + 40 * (40 <= i < 120) + max(0, i - 320) * 0.5

    found = classify({"disk_utilization": series(disk, 0.15)}, "disk_utilization")
    assert found.issue_type == "disk_filling" and found.evidence["disk_utilization.z"] > 10


def test_the_alert_metric_weighs_most() -> None:
    both = {"memory_utilization": series(lambda i: 45 + max(0, i - 200) * 0.2, 0.7),
            "disk_utilization": series(lambda i: 50 + max(0, i - 300) * 0.5, 0.15, seed=2)}
    assert classify(both, "memory_utilization").issue_type == "memory_leak"
    assert classify(both, "disk_utilization").issue_type == "disk_filling"


def test_confidence_grows_with_the_evidence() -> None:
    def leak(size: float) -> Callable[[int], float]:
        return lambda i: 45 + max(0, i - 240) * size / 120

    confidences = [classify({"memory_utilization": series(leak(size), 0.7)},
                            "memory_utilization").confidence for size in (5, 10, 20, 40)]
    assert confidences == sorted(confidences) and confidences[0] < 0.5 < confidences[-1]


def test_metrics_are_recognised_by_name() -> None:
    leak = {"node_memory_used_percent": series(lambda i: 40 + max(0, i - 200) * 0.3, 0.5)}
    assert classify(leak).issue_type == "memory_leak"
    unread = {"cache_hit_ratio": series(lambda i: 0.9 - 0.5 * (i >= STEP), 0.01)}
    assert classify(unread, "cache_hit_ratio").issue_type == UNKNOWN


def test_non_finite_samples_are_ignored() -> None:
    memory = seed_example()["memory_utilization"]
    poisoned = [(t, math.nan if i % 7 == 0 else v) for i, (t, v) in enumerate(memory)]
    poisoned += [(memory[-1][0], math.inf)]
    assert classify({"memory_utilization": poisoned}).issue_type == "memory_leak"


def test_order_of_samples_does_not_matter() -> None:
    metrics = seed_example()
    shuffled = {k: sorted(v, key=lambda s: random.Random(s[0]).random())
                for k, v in metrics.items()}
    assert classify(shuffled, "memory_utilization") == classify(metrics, "memory_utilization")


def test_too_little_history_is_no_evidence() -> None:
    assert measure_change([(0, 1.0), (1, 100.0)]).strength == 0
    assert classify({}).issue_type == UNKNOWN


VALUES = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
SAMPLES = st.lists(st.tuples(st.integers(-2**40, 2**40), VALUES), max_size=400)
METRIC_NAMES = st.sampled_from(["memory_utilization", "cpu_utilization", "request_latency_ms",
                                "disk_utilization", "requests_per_second", "queue_depth"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(METRIC_NAMES, SAMPLES, max_size=4), st.one_of(st.none(), METRIC_NAMES))
def test_any_input_gives_a_known_type_and_a_confidence_in_0_1(
        metrics: dict[str, Samples], alert_metric: str | None) -> None:
    found = classify(metrics, alert_metric)
    assert found.issue_type in ISSUE_TYPES
    assert 0.0 <= found.confidence <= 1.0
    assert all(math.isfinite(v) for v in found.evidence.values())


@settings(max_examples=50, deadline=None)
@given(VALUES, st.integers(0, 500), METRIC_NAMES)
def test_a_constant_series_is_unknown(level: float, length: int, metric: str) -> None:
    found = classify({metric: [(i * TICK_MS, level) for i in range(length)]}, metric)
    assert found.issue_type == UNKNOWN
