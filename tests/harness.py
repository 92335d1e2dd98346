"""In-process harness: drive a capability's batch step with its real tables, no broker.

The tables are the agents' own (changelog-backed Faust tables in an app that never
connects, :func:`memory_app`); what they would produce is kept by a
:class:`RecordingEmitter` instead of librdkafka.  :class:`AnomalyHarness` and
:class:`TrustHarness` run one batch the way the agents do (the same batch step,
the same table writes), so a test sees the alerts, predictions, decisions and
changelog records a worker would send.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from dharma.agents.anomaly.agent import CHECKPOINTS_PER_BATCH
from dharma.agents.anomaly.logic import BatchStep, DetectorConfig, Observation, Scored
from dharma.agents.anomaly.state import DetectorStore, detector_table
from dharma.agents.trust.engine import TrustEngine
from dharma.agents.trust.logic import Outcome, TrustStep
from dharma.agents.trust.models import AccessEvent, parse_access_event
from dharma.agents.trust.state import TrustTables
from dharma.streams.alerting import AlertPolicy, Silence
from dharma.streams.changelog import TableWriter
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.records import MetricSample

_apps = itertools.count()


class RecordingEmitter:
    """Stands in for the worker's emitter: keeps what would be produced."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    def emit(self, topic: str, key: bytes | None, value: bytes | None,
             partition: int | None = None) -> None:
        self.sent.append((topic, key, value, partition))

    async def flush(self) -> None:
        """Nothing to wait for: every message is kept at once."""

    def to(self, topic_suffix: str) -> list[tuple[bytes | None, bytes | None]]:
        """``(key, value)`` of the messages to topics ending in ``topic_suffix``."""
        return [(k, v) for t, k, v, _ in self.sent if t.endswith(topic_suffix)]


def recorder_of(writer: TableWriter) -> RecordingEmitter:
    """The :class:`RecordingEmitter` a test gave ``writer``."""
    assert isinstance(writer.emitter, RecordingEmitter)
    return writer.emitter


def event_at(partition: int = 0, offset: int = 0, **message: Any) -> Any:
    """A consumed event as the batch steps and tables read it (its log position)."""
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset,
                                                   **message))


def memory_app(name: str) -> faust.App:
    """A Faust app for tables only: in-memory store, a broker it never connects to."""
    return faust.App(f"t-{name}-{next(_apps)}", broker="kafka://127.0.0.1:1",
                     store="memory://", web_enabled=False)


class AnomalyHarness:
    """The anomaly agent's batch step over its checkpointed detector store."""

    def __init__(self, policy: AlertPolicy | None = None, **store: Any) -> None:
        self.emitter = RecordingEmitter()
        self.metrics = PipelineMetrics(CollectorRegistry())
        factory = DetectorConfig().build
        self.store = DetectorStore(TableWriter(detector_table(memory_app("anomaly")),
                                               self.emitter),
                                   factory, metrics=self.metrics, **store)
        self.step = BatchStep(self.store, factory, policy or AlertPolicy())
        self._offsets = itertools.count()

    def batch(self, records: Iterable[dict[str, Any]], silences: Sequence[Silence] = (),
              now_ms: int = 0) -> Scored:
        """Score one batch of ``metrics.raw`` values, as the agent does (then checkpoint)."""
        samples = [(event_at(0, next(self._offsets)),
                    Observation.of(MetricSample.model_validate(r))) for r in records]
        scored = self.step(samples, silences, now_ms)
        self.store.checkpoint(force=scored.changed, limit=CHECKPOINTS_PER_BATCH)
        return scored


class TrustHarness:
    """The trust agent's batch step over its two changelog-backed tables."""

    def __init__(self, engine: TrustEngine) -> None:
        self.emitter = RecordingEmitter()
        self.metrics = PipelineMetrics(CollectorRegistry())
        self.tables = TrustTables(memory_app("trust"), self.emitter,
                                  self.metrics)
        self.step = TrustStep(engine, self.tables)
        self._offsets = itertools.count()

    def batch(self, records: Iterable[dict[str, Any] | AccessEvent],
              now_ms: int | None = None) -> Outcome[Any]:
        """Decide one batch of valid ``audit.logs`` records and store what it taught (the
        agent stores once the sinks took the decisions)."""
        items = [(event_at(0, next(self._offsets)), parse_access_event(r)) for r in records]
        out = self.step.fold(items, now_ms)
        self.step.store(out)
        return out
