"""Pure parts of the broker load report and the soak bench: warnings, slopes, doctests."""

from __future__ import annotations

import doctest
import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.bench.soak import slope_per_10_min
from dharma.infra.stack.broker_load import CPU_WARN_PERCENT, BrokerLoad


@pytest.mark.parametrize("module", ["dharma.infra.stack.broker_load", "dharma.bench.soak",
                                    "dharma.streams.faust_fork.offsets"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0


def test_no_warning_on_a_light_broker() -> None:
    load = BrokerLoad(cpu_percent=5.0, rss_mb=50.0, records={"t": 10}, scan_ms={"t": 3.0})
    assert load.warnings(fetch_wait_ms=100) == []
    assert load.retained_records == 10
    assert load.slowest() == ("t", 3.0)


def test_warnings_name_the_topics_nearest_the_wait_first_then_cpu() -> None:
    load = BrokerLoad(cpu_percent=CPU_WARN_PERCENT, rss_mb=50.0,
                      records={"a": 1, "b": 1, "c": 1}, scan_ms={"a": 55.0, "b": 90.0, "c": 1.0})
    warnings = load.warnings(fetch_wait_ms=100)
    assert [w.split(":")[0] for w in warnings[:2]] == ["b", "a"]
    assert "core" in warnings[2] and len(warnings) == 3


def test_an_empty_broker_has_no_slowest_topic() -> None:
    assert BrokerLoad(0.0, 1.0, {}, {}).slowest() == ("", 0.0)


@given(st.floats(-50, 50), st.floats(-1e3, 1e3),
       st.lists(st.integers(0, 36_000), min_size=2, max_size=30, unique=True))
def test_slope_of_a_line_is_its_rate_per_10_minutes(rate: float, start: float,
                                                    times: list[int]) -> None:
    points = [(float(t), start + rate * t / 600) for t in times]
    assert slope_per_10_min(points) == pytest.approx(rate, abs=1e-2)


def test_slope_needs_two_distinct_times() -> None:
    assert slope_per_10_min([(5.0, 1.0), (5.0, 2.0)]) is None
