"""Hostile records on the ``series-stats`` changelog: recovery never stalls, the series
starts afresh (counted), every other series goes on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from harness import RecordingEmitter, event_at, recorder_of
from hostile import UNDECODABLE_KEYS, exec_pickle, hostile_json_values, recover
from prometheus_client import CollectorRegistry

from dharma.agents.validation.logic import SeriesStats
from dharma.agents.validation.state import SERIES_STATS_TABLE, series_stats, update_series_stats
from dharma.streams.admin import registry_client
from dharma.streams.app import StreamContext
from dharma.streams.checkpoint import TypedTable, table_key
from dharma.streams.codec import AvroWire
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.records import MetricSample
from dharma.streams.settings import Settings

NOW = int(time.time() * 1000)
GOOD = SeriesStats(count=10, mean=40.0, var=2.0, last_value=41.0, last_ts=NOW - 60_000)

#: Statistics that decode as JSON but must not be believed.
ABSURD = {
    "count_negative": {**GOOD.to_dict(), "count": -3},
    "var_negative": {**GOOD.to_dict(), "var": -1.0},  # its std would raise
    "count_as_float": {**GOOD.to_dict(), "count": 10.0},
    "mean_as_text": {**GOOD.to_dict(), "mean": "40"},
    "last_ts_ahead": {**GOOD.to_dict(), "last_ts": NOW + 365 * 86_400_000},  # freezes it
    "field_missing": {k: v for k, v in GOOD.to_dict().items() if k != "var"},
}
VALUES = {**{kind: orjson.dumps(v) for kind, v in ABSURD.items()},
          **hostile_json_values(GOOD.to_dict()), "exec_pickle": exec_pickle(Path("/nonexistent"))}


def stats_table(metrics: PipelineMetrics) -> TypedTable[SeriesStats]:
    app = faust.App("t-series-stats", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    settings = Settings()
    # the tables decode nothing: the wire's registry is never contacted
    wire = AvroWire(registry_client(settings))
    ctx = StreamContext(settings, wire, metrics, RecordingEmitter())
    return series_stats(app, ctx)


def samples(source: str, n: int) -> list[tuple[Any, MetricSample]]:
    event = event_at(0, 0)
    return [(event, MetricSample(source=source, metric="cpu", value=40.0 + i,
                                 ts=NOW - 30_000 + i)) for i in range(n)]


def rejected(metrics: PipelineMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value(
        "dharma_checkpoints_rejected_total", {"table": SERIES_STATS_TABLE, "reason": reason}) or 0.0


def test_recovery_applies_any_record() -> None:
    table = stats_table(PipelineMetrics(CollectorRegistry())).writer.table
    records = [(key, b"\x00junk") for key in UNDECODABLE_KEYS]
    records += [(table_key(f"s{i}|cpu"), value) for i, value in enumerate(VALUES.values())]
    recover(table, records)
    assert dict(table.data) == dict(records)


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_an_unreadable_series_starts_afresh_and_the_others_go_on(kind: str) -> None:
    metrics = PipelineMetrics(CollectorRegistry())
    stats = stats_table(metrics)
    recover(stats.writer.table, [*((key, b"\x00junk") for key in UNDECODABLE_KEYS),
                                 (table_key("bad|cpu"), VALUES[kind]),
                                 (table_key("good|cpu"), orjson.dumps(GOOD.to_dict()))])
    update_series_stats(stats, [*samples("bad", 5), *samples("good", 5)])
    assert stats.get("bad|cpu").count == 5  # afresh
    assert stats.get("good|cpu").count == 15  # restored, then folded
    reason = "format" if kind in ("not_json", "pickle", "exec_pickle", "list", "oversized") \
        else "invalid"
    assert rejected(metrics, reason) == 1.0
    _, key, value, _ = recorder_of(stats.writer).sent[0]
    assert value is not None
    assert (key, orjson.loads(value)["count"]) == (table_key("bad|cpu"), 5)  # replaced


def test_a_written_record_is_what_faust_wrote_for_a_str_keyed_json_table() -> None:
    """Existing changelogs (``str`` keys and JSON values, written by Faust or by the
    earlier table writer) recover unchanged."""
    stats = stats_table(PipelineMetrics(CollectorRegistry()))
    update_series_stats(stats, samples("web-01", 3))
    ((_, key, value, _),) = recorder_of(stats.writer).sent
    assert key is not None and value is not None
    assert orjson.loads(key) == "web-01|cpu"
    assert SeriesStats.from_dict(orjson.loads(value)) == stats.get("web-01|cpu")
