"""The PromQL metric-name extractor the dashboard and rules checks rely on (`tests/promql.py`;
the overview dashboard's contract check in `test_compose.py` uses it too)."""

from __future__ import annotations

import doctest

import promql
import pytest
from hypothesis import given
from hypothesis import strategies as st
from promql import metric_names, sample_names

NAME = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True).filter(
    lambda n: n not in {"by", "without", "on", "ignoring", "group_left", "group_right",
                        "bool", "and", "or", "unless", "offset", "inf", "nan", "start", "end",
                        "atan2", "sum", "min", "max", "avg", "group", "stddev", "stdvar",
                        "count", "count_values", "bottomk", "topk", "quantile", "limitk",
                        "limit_ratio"})


def test_the_doctests_hold() -> None:
    assert doctest.testmod(promql).failed == 0


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", {"up"}),
        ('up{job="dharma-workers"} == 0', {"up"}),
        ('absent(up{job="dharma-workers"})', {"up"}),
        ('sum by (service, topic) (rate(dharma_dead_lettered_total[5m])) > 1',
         {"dharma_dead_lettered_total"}),
        ("sum(rate(a_total[1m])) / clamp_min(sum(rate(b_total[1m])), 1e-9)",
         {"a_total", "b_total"}),
        ("sum(rate(a_total[1m])) by (x) / on (x) group_left (y) b_info",
         {"a_total", "b_info"}),
        ('histogram_quantile(0.99, sum by (le, agent) (rate(x_bucket{s=~"$v"}[$__rate_interval])))',
         {"x_bucket"}),
        ('label_values(up{service="worker-cmdb"}, instance)', {"up"}),
        ("label_values(instance)", set()),
        ('max_over_time(lag[1h:5m]) offset 1d', {"lag"}),
        ('x unless ignoring (partition) y', {"x", "y"}),
        ('a > bool 0x1F and b < 1.5e3 or c != Inf', {"a", "b", "c"}),
        ('{__name__="via_matcher", job="j"}', {"via_matcher"}),
        ('sum(rate(m{l="has } and ( inside"}[5m]))', {"m"}),  # braces and parens in a string
        ('label_replace(m, "dst", "$1", "src", "(.*)")', {"m"}),
        ("topk(5, sum by (sink) (s)) @ end()", {"s"}),
        ('${__range} + m_count', {"m_count"}),
    ],
)
def test_metric_names(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


@given(NAME, st.lists(NAME, max_size=3), NAME)
def test_a_selector_yields_its_name_and_never_its_labels(
        metric: str, labels: list[str], grouping: str) -> None:
    matchers = ", ".join(f'{label}=~"{label}.*"' for label in labels)
    expr = f"sum by ({grouping}) (rate({metric}{{{matchers}}}[5m])) / on ({grouping}) {metric}"
    assert metric_names(expr) == {metric}


@pytest.mark.parametrize(
    ("family", "kind", "samples"),
    [
        ("c", "counter", {"c_total", "c_created"}),
        ("h", "histogram", {"h_bucket", "h_sum", "h_count", "h_created"}),
        ("g", "gauge", {"g"}),
        ("u", "unknown", {"u"}),
    ],
)
def test_sample_names_follow_the_exposition_format(family: str, kind: str,
                                                   samples: set[str]) -> None:
    assert sample_names(family, kind) == samples
