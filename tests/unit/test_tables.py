"""TypedTable: what a refused record costs, and what replaces it."""

from __future__ import annotations

import doctest
from dataclasses import dataclass
from typing import Any

import faust
import orjson
import pytest
from harness import RecordingEmitter, event_at, recorder_of
from hostile import recover
from prometheus_client import CollectorRegistry

import dharma.streams.checkpoint
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import TypedTable, checkpoint_table, table_key
from dharma.streams.errors import BrokenCheckpoint
from dharma.streams.metrics import PipelineMetrics

EVENT: Any = event_at(0, 0)


@dataclass(frozen=True)
class Level:
    value: int = 0


def table_of(metrics: PipelineMetrics, check: Any = None) -> TypedTable[Level]:
    app = faust.App("t-tables", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    writer = TableWriter(checkpoint_table(app, "levels", 1, help="test"),
                         RecordingEmitter())
    return TypedTable(writer, Level, lambda v: {"value": v.value}, Level, metrics, check)


def refused(metrics: PipelineMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value(
        "dharma_checkpoints_rejected_total", {"table": "levels", "reason": reason}) or 0.0


def test_doctests() -> None:
    assert doctest.testmod(dharma.streams.checkpoint).failed == 0


def test_a_refused_record_is_counted_once_and_refused_until_written() -> None:
    metrics = PipelineMetrics(CollectorRegistry())
    levels = table_of(metrics)
    recover(levels.writer.table, [(table_key("a"), b'{"value": "7"}')])
    for _ in range(3):
        with pytest.raises(BrokenCheckpoint, match="invalid: value"):
            levels.get("a")
    assert refused(metrics, "invalid") == 1.0
    levels.set("a", Level(3), EVENT)
    assert levels.get("a") == Level(3)
    ((_, key, value, _),) = recorder_of(levels.writer).sent
    assert value is not None
    assert (key, orjson.loads(value)) == (b'"a"', {"value": 3})


def test_a_check_refuses_what_the_type_allows_and_a_decoder_bug_is_an_error() -> None:
    metrics = PipelineMetrics(CollectorRegistry())

    def positive(level: Level) -> None:
        if level.value <= 0:
            raise ValueError("not positive")

    levels = table_of(metrics, positive)
    recover(levels.writer.table, [(table_key("a"), b'{"value": 0}'),
                                  (table_key("b"), b'{"value": 1}')])
    with pytest.raises(BrokenCheckpoint, match="not positive"):
        levels.get("a")
    assert levels.get("b") == Level(1) and levels.get("new") == Level()

    def bug(level: Level) -> None:
        raise RuntimeError("bug")

    broken = table_of(metrics, bug)
    recover(broken.writer.table, [(table_key("c"), b'{"value": 1}')])
    with pytest.raises(BrokenCheckpoint, match="error"):
        broken.get("c")
    assert (refused(metrics, "invalid"), refused(metrics, "error")) == (1.0, 1.0)


def test_only_raw_bytes_tables_are_written() -> None:
    app = faust.App("t-tables", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    with pytest.raises(ValueError, match="checkpoint_table"):
        TableWriter(app.Table("json", default=None, key_type=str),  # type: ignore[arg-type]  # Faust types it as TableT
                    RecordingEmitter())
