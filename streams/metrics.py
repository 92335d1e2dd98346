"""Prometheus metrics of a worker, collected by a Faust sensor (not inside agents).

Every name is registered when the worker starts, so ``/metrics`` lists them all
before the first event; the Grafana dashboards and the Prometheus rules in
``infra/docker`` use only these names (``tests/integration/test_grafana_metrics.py``
checks them against each topology's worker).  Among them:
``dharma_events_in_total{topic}``, ``dharma_events_out_total{topic}``,
``dharma_dead_lettered_total{topic,error_kind}``, ``dharma_sink_rows_total{sink}``,
``dharma_sink_holding{sink}``, ``dharma_consumer_lag{topic,partition}`` and
``dharma_processing_latency_seconds{agent}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from faust.sensors.base import Sensor
from faust.types import TP, AppT, EventT, Message, StreamT
from faust.types.transports import ProducerT
from faust.types.tuples import PendingMessage, RecordMetadata
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

logger = logging.getLogger(__name__)

#: How often a worker reads its consumer lag (Prometheus scrapes every 15 s).
LAG_INTERVAL_S = 10.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PipelineMetrics:
    """The worker's counters and histograms, in one Prometheus registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.events_in = Counter(
            "dharma_events_in", "Events read by agents.", ["topic"], registry=registry)
        self.events_out = Counter(
            "dharma_events_out", "Messages produced.", ["topic"], registry=registry)
        self.dead_lettered = Counter(
            "dharma_dead_lettered", "Input events sent to a dead-letter topic.",
            ["topic", "error_kind"], registry=registry)
        self.sink_rows = Counter(
            "dharma_sink_rows", "Rows written by sinks (duplicates included).", ["sink"],
            registry=registry)
        self.sink_held = Counter(
            "dharma_sink_held_seconds",
            "Time agents held a batch, their partitions paused, while a store was away.",
            ["sink"], registry=registry)
        self.sink_holding = Gauge(
            "dharma_sink_holding", "Batches held right now, their partitions paused, while a "
            "store is away (0 when every store answers).", ["sink"], registry=registry)
        self.sink_outages = Counter(
            "dharma_sink_outages", "Held batches, by how the hold ended: written after the "
            "store came back, or given up at the limit (then dead-lettered).",
            ["sink", "outcome"], registry=registry)
        self.checkpoints_rejected = Counter(
            "dharma_checkpoints_rejected",
            "Records read back from a table that its reader refused (the key started "
            "afresh, or decisions about it fail closed).",
            ["table", "reason"], registry=registry)
        self.table_keys_evicted = Counter(
            "dharma_table_keys_evicted",
            "Keys a checkpointed table forgot, with their checkpoints (idle, dormant after a "
            "restart, or beyond its capacity).", ["table", "reason"], registry=registry)
        self.sink_write_seconds = Histogram(
            "dharma_sink_write_seconds", "Time one batch write to a store took (retries included).",
            ["sink"], buckets=LATENCY_BUCKETS, registry=registry)
        self.cmdb_changes = Counter(
            "dharma_cmdb_changes_applied", "Asset and dependency changes appended to the CMDB's "
            "history, each once (its graph write follows).", ["kind"], registry=registry)
        self.cmdb_stale_assets = Gauge(
            "dharma_cmdb_stale_assets", "Assets their source's last complete sync did not see.",
            registry=registry)
        self.executor_requests = Counter(
            "dharma_executor_requests", "Remediation requests an executor answered, by "
            "outcome: succeeded, failed, refused (unknown action, no webhook), expired, or "
            "replayed (seen before: its stored reports published again, nothing executed).",
            ["outcome"], registry=registry)
        self.incidents_open = Gauge(
            "dharma_healing_incidents_open", "Incidents not resolved (pending, open or "
            "acknowledged).", registry=registry)
        self.remediations = Counter(
            "dharma_healing_remediations", "Remediations by outcome: requested, succeeded, "
            "failed, verified, unverified (nothing to verify), verification_failed, rolled_back, "
            "expired (lease).", ["outcome"],
            registry=registry)
        self.remediation_skips = Counter(
            "dharma_healing_skips", "Remediations decided and not requested, by the guard "
            "that skipped, deferred or held them.", ["guard"], registry=registry)
        self.mttr = Histogram(
            "dharma_healing_mttr_seconds", "Time from an incident's first alert to its "
            "recovery, for resolved incidents.", buckets=(30, 60, 120, 300, 600, 1200, 1800,
                                                          3600, 7200, 14400, 43200, 86400),
            registry=registry)
        self.cost_rows = Counter(
            "dharma_cost_rows_written", "Cost rows (asset and window) stored new or revised, by "
            "granularity.", ["granularity"], registry=registry)
        self.cost_corrections = Counter(
            "dharma_cost_corrections", "Hour rows of stored cost that a late or out-of-order "
            "lifecycle event changed (each is logged in cost_corrections).", registry=registry)
        self.consumer_lag = Gauge(
            "dharma_consumer_lag", "Records of an assigned partition past the consumer "
            "group's committed offset (its log end minus that offset).",
            ["topic", "partition"], registry=registry)
        self.latency = Histogram(
            "dharma_processing_latency_seconds",
            "From an event entering an agent's stream to its acknowledgement.",
            ["agent"], buckets=LATENCY_BUCKETS, registry=registry)

    def record_lag(self, lags: Mapping[TP, int]) -> None:
        """Set the lag of each partition in ``lags``; forget those no longer assigned."""
        gauge = self.consumer_lag
        current = {(tp.topic, str(tp.partition)): lag for tp, lag in lags.items()}
        shown = {(s.labels["topic"], s.labels["partition"])
                 for metric in gauge.collect() for s in metric.samples}
        for labels in shown - current.keys():
            gauge.remove(*labels)
        for (topic, partition), lag in current.items():
            gauge.labels(topic, partition).set(lag)

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:  # noqa: S104 - scraped by Prometheus
        """Serve ``/metrics`` on ``port`` (0: a free one); the port in use."""
        server, _ = start_http_server(port, addr=addr, registry=self.registry)
        return int(server.server_port)


def partition_lag(end: int | None, committed: int | None, earliest: int | None) -> int | None:
    """Records of a partition past its committed offset (``None``: its end is unknown).

    A group that never committed reads from the log start (the workers' ``earliest``);
    an end reported short of the committed offset (Tansu's ``ListOffsets``) is no lag.

    >>> partition_lag(120, 100, 0), partition_lag(120, None, 20), partition_lag(90, 100, 0)
    (20, 100, 0)
    >>> partition_lag(None, 100, 0) is None
    True
    """
    if end is None:
        return None
    start = committed if committed is not None else (earliest or 0)
    return max(0, end - start)


async def consumer_lag(app: AppT) -> dict[TP, int]:
    """The lag of every partition whose offsets ``app`` commits (its agents' input; not
    its tables' changelogs nor Faust's leader topic)."""
    consumer = app.consumer
    tps = [tp for tp in consumer.assignment() if app.topics.acks_enabled_for(tp.topic)]
    if not tps:
        return {}
    ends = await consumer.highwaters(*tps)
    # Faust keeps the group's committed offsets (read at assignment, then as it commits)
    # only in this attribute (pinned by tests/unit/test_faust_contract.py).
    committed: Mapping[TP, int | None] = consumer._committed_offset  # type: ignore[attr-defined]
    unread = [tp for tp in tps if committed.get(tp) is None]
    earliest = await consumer.earliest_offsets(*unread) if unread else {}
    lags = {tp: partition_lag(ends.get(tp), committed.get(tp), earliest.get(tp)) for tp in tps}
    return {tp: lag for tp, lag in lags.items() if lag is not None}


class PrometheusSensor(Sensor):
    """Faust sensor feeding :class:`PipelineMetrics`; with ``app``, it also reads the
    consumer lag of the app's partitions every :data:`LAG_INTERVAL_S`."""

    def __init__(self, metrics: PipelineMetrics, app: AppT | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics, self._app = metrics, app

    @Sensor.timer(LAG_INTERVAL_S)
    async def _read_consumer_lag(self) -> None:
        if self._app is None:
            return
        try:
            lags = await asyncio.wait_for(consumer_lag(self._app), LAG_INTERVAL_S)
        except Exception as exc:  # a rebalance or a broker away: keep the last figures
            logger.debug("consumer lag not read: %r", exc)
            return
        self.metrics.record_lag(lags)

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        message.time_in = time.monotonic()

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: EventT
    ) -> dict | None:
        self.metrics.events_in.labels(tp.topic).inc()
        return None

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: StreamT, event: EventT, state: dict | None = None
    ) -> None:
        # Batched streams (``take_events``) ack without sensor state: time from arrival.
        time_in = event.message.time_in
        if time_in is not None:
            agent = stream.shortlabel.removeprefix("Stream: ") if stream else tp.topic
            self.metrics.latency.labels(agent).observe(time.monotonic() - time_in)

    def on_send_initiated(
        self, producer: ProducerT, topic: str, message: PendingMessage,
        keysize: int, valsize: int,
    ) -> Any:
        return topic

    def on_send_completed(
        self, producer: ProducerT, state: Any, metadata: RecordMetadata
    ) -> None:
        self.metrics.events_out.labels(metadata.topic).inc()
