"""The metric names a PromQL expression selects, and the expressions of our Grafana
dashboards and Prometheus rules (so tests can hold them against real ``/metrics``).

A small scanner, not a parser: it skips strings, label matchers, range and subquery
brackets, numbers and durations, Grafana variables (``$topic``, ``${__rate_interval}``),
function names (an identifier before ``(``), aggregation operators, the label lists of
``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` and operator
keywords; every other identifier is a metric name.  ``{__name__="x"}`` selects ``x``.

>>> sorted(metric_names('sum by (topic) (rate(a_total{topic=~"$topic"}[5m])) / b'))
['a_total', 'b']
>>> sorted(metric_names('label_values(dharma_events_in_total, topic)'))
['dharma_events_in_total']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DASHBOARDS", "RULES", "dashboard_queries", "metric_names", "rule_queries",
           "sample_names"]

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "infra" / "docker" / "grafana" / "dashboards"
RULES = ROOT / "infra" / "docker" / "prometheus" / "rules.yml"

_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                 "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
_KEYWORDS = {"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan", "start", "end",
             *_AGGREGATIONS}
_TOKEN = re.compile(r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<matchers>\{(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`|[^}"'`])*\})
  | (?P<range>\[[^\]]*\])
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<number>(?:0[xX][0-9a-fA-F]+|\d[\d.]*(?:[eE][-+]?\d+)?)[a-zA-Z0-9]*|\.\d+)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<other>\S)
""", re.VERBOSE)
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_LABEL_VALUES = re.compile(r"\s*label_values\(\s*(?:(?P<query>.+?)\s*,\s*)?\w+\s*\)\s*")


def metric_names(expr: str) -> set[str]:
    """Metric names ``expr`` (PromQL, or Grafana's ``label_values(query, label)``) selects.

    >>> sorted(metric_names('histogram_quantile(0.99, sum by (le) (rate(x_bucket[1m])))'))
    ['x_bucket']
    >>> sorted(metric_names('a and on (job) b offset 5m > bool 1e-9'))
    ['a', 'b']
    >>> sorted(metric_names('{__name__="up", job="x"} or count(c) without (i)'))
    ['c', 'up']
    """
    values = _LABEL_VALUES.fullmatch(expr)
    if values:
        return metric_names(values["query"]) if values["query"] else set()
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr)]
    names: set[str] = set()
    skip_group = False
    for i, (kind, text) in enumerate(tokens):
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "matchers":
            names |= {a or b for a, b in _NAME_MATCHER.findall(text)}
        elif skip_group:
            skip_group = text != ")"
        elif kind == "ident" and text in _GROUPING:
            skip_group = following == "("
        elif kind == "ident" and following != "(" and text.lower() not in _KEYWORDS:
            names.add(text)
    return names


def sample_names(family: str, kind: str) -> set[str]:
    """The sample names a ``/metrics`` family of type ``kind`` exposes.

    >>> sorted(sample_names("dharma_events_in", "counter"))
    ['dharma_events_in_created', 'dharma_events_in_total']
    >>> sorted(sample_names("lag", "gauge"))
    ['lag']
    """
    suffixes = {"counter": ("_total", "_created"),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created")}.get(kind, ("",))
    return {family + suffix for suffix in suffixes}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows keep collapsed panels inside


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL query of a dashboard: its panels' targets and its query variables."""
    exprs = [t.get("expr", "") for p in _panels(dashboard.get("panels", []))
             for t in p.get("targets", [])]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            exprs.append(query.get("query", "") if isinstance(query, dict) else str(query))
    return [e for e in exprs if e]


def rule_queries(rules: dict[str, Any]) -> list[str]:
    """Every ``expr`` of a Prometheus rules file."""
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def load_dashboards() -> dict[str, dict[str, Any]]:
    """The provisioned dashboards, by file stem."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def load_rules() -> dict[str, Any]:
    """The Prometheus rules file."""
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded
