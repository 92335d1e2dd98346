"""The Faust app of one worker and the context its agents share.

Consumed topics carry raw bytes: agents decode them with :class:`AvroWire`
themselves, so an undecodable message becomes a dead letter instead of a
codec error Faust would log and drop.  Emitted records are encoded by the
same codec, in the Confluent wire format.
"""

from __future__ import annotations

import gc
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import faust
from confluent_kafka import KafkaException
from faust.types import EventT

from dharma.streams.admin import registry_client
from dharma.streams.codec import AvroWire
from dharma.streams.emitter import BatchEmitter, Emitter
from dharma.streams.errors import RejectedEvent
from dharma.streams.faust_fork.transport import set_fetch_wait
from dharma.streams.metrics import PipelineMetrics, PrometheusSensor
from dharma.streams.records import dead_letter
from dharma.streams.settings import Settings
from dharma.streams.topics import TopicSpec

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class StreamContext:
    """What every agent of a worker shares: settings, codec, metrics, output producer."""

    settings: Settings
    wire: AvroWire
    metrics: PipelineMetrics
    emitter: BatchEmitter

    async def resolve_schemas(self, events: Sequence[EventT]) -> None:
        """Look up the writer schemas a batch names before it is decoded, off the event
        loop (decoding in a worker never calls the registry itself)."""
        await self.wire.resolve(event.message.value for event in events)


def _credentials(settings: Settings) -> Any:
    kafka = settings.kafka
    context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.sasl_mechanism:
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        return faust.SASLCredentials(
            username=kafka.sasl_username or "", password=password,
            mechanism=kafka.sasl_mechanism, ssl_context=context)
    return faust.SSLCredentials(context) if context else None


def make_app(settings: Settings, name: str,
             metrics: PipelineMetrics | None = None) -> tuple[faust.App, StreamContext]:
    """A Faust app for topology ``name`` (its own consumer group) and its context."""
    worker = settings.worker
    datadir = (worker.data_dir / name).resolve()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{worker.app_id}-{name}",
        broker=settings.kafka.faust_broker_url(),
        broker_credentials=_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        broker_session_timeout=worker.session_timeout_s,
        broker_heartbeat_interval=worker.heartbeat_interval_s,
        broker_commit_interval=worker.commit_interval_s,
        topic_replication_factor=worker.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_linger_ms=5,
        stream_buffer_maxsize=16384,
        TableManager="dharma.streams.faust_fork.recovery:TableManager",
    )
    set_fetch_wait(app, worker.fetch_max_wait_ms, worker.recovery_fetch_max_wait_ms)
    metrics = metrics or PipelineMetrics()
    app.sensors.add(PrometheusSensor(metrics, app))
    wire = AvroWire(registry_client(settings), lookup_on_miss=False)
    context = StreamContext(settings, wire, metrics, Emitter(settings, metrics))
    return app, context


def raw_topic(app: faust.App, spec: TopicSpec) -> faust.TopicT:
    """The Faust topic for ``spec``, carrying undecoded bytes."""
    return app.topic(
        spec.name, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw", partitions=spec.partitions,
    )


def split_batch(
    events: Sequence[EventT], parse: Callable[[EventT], T],
) -> tuple[list[tuple[EventT, T]], list[tuple[EventT, RejectedEvent]]]:
    """Parse each event of a batch; split it into accepted values and rejections.

    ``parse`` raises :class:`RejectedEvent` for bad input; any other exception
    becomes a ``processing_error`` rejection too, since Faust would ack an event
    whose processing raised and nothing may be lost silently.
    """
    accepted, rejected = [], []
    for event in events:
        try:
            accepted.append((event, parse(event)))
        except RejectedEvent as exc:
            rejected.append((event, exc))
        except Exception as exc:
            msg = event.message
            logger.exception("processing error %s[%s]@%s", msg.topic, msg.partition, msg.offset)
            rejected.append((event, RejectedEvent("processing_error", repr(exc))))
    return accepted, rejected


async def send_dead_letters(
    ctx: StreamContext, dlq: faust.TopicT, rejected: Sequence[tuple[EventT, RejectedEvent]],
) -> None:
    """Queue rejected events for ``dlq`` with their reason and original bytes; count them.

    The caller awaits ``ctx.emitter.flush()`` before its batch is acknowledged.
    """
    topic = dlq.get_topic_name()
    subject = f"{topic}-value"
    for event, exc in rejected:
        msg = event.message
        record = dead_letter(
            topic=msg.topic, partition=msg.partition, offset=msg.offset,
            error_kind=exc.error_kind, reason=exc.reason, key=msg.key, value=msg.value,
        )
        try:
            ctx.emitter.emit(topic, record["original_key"], ctx.wire.encode(subject, record))
        except KafkaException as failed:  # one record's dead letter must not sink its batch
            logger.error("dead letter not produced %s[%s]@%s: %r", msg.topic, msg.partition,
                         msg.offset, failed)
            continue
        ctx.metrics.dead_lettered.labels(msg.topic, exc.error_kind).inc()
    if rejected:
        first, exc = rejected[0][0].message, rejected[0][1]
        logger.warning("dead-lettered count=%d first=%s[%s]@%s kind=%s reason=%s", len(rejected),
                       first.topic, first.partition, first.offset, exc.error_kind, exc.reason)


def run_worker(app: faust.App, log_level: str = "warning", **kwargs: Any) -> None:
    """Run ``app`` in a Faust worker until stopped, without Faust's terminal spinner
    (:mod:`dharma.streams.faust_fork.worker`).

    Garbage collection is tuned for stream work (in every worker, the bench
    baselines too): the young generation is collected every 50,000 allocations
    instead of 700, since a batch's objects live until the batch is done and
    detectors hold many small long-lived objects; what exists at start
    (modules, the app) is frozen out of full collections.
    """
    from dharma.streams.faust_fork.worker import Worker

    gc.set_threshold(50_000, 20, 20)
    gc.collect()
    gc.freeze()

    worker = Worker(app, loglevel=getattr(logging, log_level.upper()), quiet=True,
                    redirect_stdouts=False, **kwargs)
    worker.execute_from_commandline()
