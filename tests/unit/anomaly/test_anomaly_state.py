"""The detector table: any changelog record reaches our decoder; a refused one starts afresh."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import faust
import pytest
from faust.types.tuples import Message
from harness import RecordingEmitter
from prometheus_client import CollectorRegistry

from dharma.agents.anomaly.codec import CheckpointCodec, SeriesState
from dharma.agents.anomaly.logic import make_detector
from dharma.agents.anomaly.state import DetectorStore, detector_table
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import CheckpointedTable, table_key
from dharma.streams.metrics import PipelineMetrics

EVENT: Any = object()  # what the store keeps to log a later checkpoint; unused by reads
SERIES = "web-01|cpu"

#: Changelog records of the detector table that Faust itself could not decode with a
#: ``str``-keyed table: invalid UTF-8 (KeyDecodeError), a JSON object (unhashable key).
HOSTILE_RECORDS = [(b"\xff\xfe", b"\x00"), (b'{"a": 1}', b"junk"), (b"[1, [2]]", b""),
                   (table_key(SERIES), pickle.dumps(object()))]


def app() -> faust.App:
    return faust.App("t-state", broker="kafka://127.0.0.1:1", store="memory://",
                     web_enabled=False)


def store_of(table: faust.Table, metrics: PipelineMetrics) -> DetectorStore:
    return DetectorStore(TableWriter(table, emitter=RecordingEmitter()), make_detector,
                         metrics=metrics)


def rejected(metrics: PipelineMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "dharma_checkpoints_rejected_total", {"table": "detectors", "reason": reason})
    return value or 0.0


def warm_state(n: int = 300) -> SeriesState:
    det = make_detector()
    for i in range(n):
        x = {"value": 50.0 + (i % 7), "timestamp": 1_700_000_000_000 + i * 60_000}
        det.score_one(x)
        det.learn_one(x)
    return SeriesState(det)


def test_faust_hands_any_changelog_record_to_the_decoder() -> None:
    """Recovery applies every record (raw bytes both sides): none can stall it."""
    table = detector_table(app())

    async def recover() -> None:
        for offset, (key, value) in enumerate(HOSTILE_RECORDS):
            message = Message(table.changelog_topic_name, 0, offset, 0.0, 0, None, key, value,
                              None)
            event = await table.changelog_topic.decode(message, propagate=True)
            table.apply_changelog_batch([event])

    asyncio.run(recover())
    assert dict(table.data) == dict(HOSTILE_RECORDS)


@pytest.mark.parametrize(("blob", "reason"), [
    (b"\x00garbage", "format"), (pickle.dumps(warm_state()), "format")])
def test_a_refused_checkpoint_starts_afresh_and_is_counted(blob: bytes, reason: str) -> None:
    table, metrics = detector_table(app()), PipelineMetrics(CollectorRegistry())
    table.data[table_key(SERIES)] = blob
    state = store_of(table, metrics).get(SERIES, EVENT)
    assert state.detector.warming_up and state.detector.confidence == 0.0
    assert rejected(metrics, reason) == 1.0


def test_a_valid_checkpoint_is_restored() -> None:
    table, metrics = detector_table(app()), PipelineMetrics(CollectorRegistry())
    table.data[table_key(SERIES)] = CheckpointCodec(make_detector).encode(warm_state())
    store = store_of(table, metrics)
    assert not store.get(SERIES, EVENT).detector.warming_up
    assert store.restored == 1 and rejected(metrics, "format") == 0.0


def test_a_decoder_bug_is_counted_as_an_error_and_the_key_starts_afresh() -> None:
    table, metrics = detector_table(app()), PipelineMetrics(CollectorRegistry())
    table.data[table_key(SERIES)] = b"anything"

    def broken(_: bytes) -> int:
        raise RuntimeError("bug")

    store = CheckpointedTable(TableWriter(table, emitter=RecordingEmitter()),
                              lambda _: b"", broken, lambda: 0, metrics=metrics)
    assert store.get(SERIES, EVENT) == 0
    assert rejected(metrics, "error") == 1.0


def test_only_a_raw_bytes_table_holds_checkpoints() -> None:
    json_table = app().Table("detectors", default=None, key_type=str, value_type=bytes)
    with pytest.raises(ValueError, match="checkpoint_table"):
        # the wrong kind of table, on purpose
        store_of(json_table, PipelineMetrics(CollectorRegistry()))  # type: ignore[arg-type]
