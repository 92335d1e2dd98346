"""Self-healing agent on ``alerts.notifications`` and ``infrastructure.events`` (Faust
wiring only; the loop is :class:`~dharma.agents.healing.engine.Healer`).

Per batch: decode and validate (bad input is dead-lettered to its topic's ``.dlq``;
asset and dependency events, and the remediation statuses healing publishes itself,
pass by), then apply the signals.  A timer does the due work every
``DHARMA_HEALING_TICK_S`` (:class:`~dharma.agents.healing.followup.FollowUp`).  The
batch and the timer never interleave (one lock), and every step reads its state
from PostgreSQL, so the worker keeps nothing that a restart could lose.

A store that is away (PostgreSQL, the graph) holds the batch (partitions paused) up
to the worker's outage limit; then the batch is dead-lettered as ``sink_error`` and
``dharma dlq redrive`` applies it again (what was applied is not applied twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import faust
from faust.types import EventT

from dharma.agents.healing.engine import Healer, Publisher
from dharma.agents.healing.followup import FollowUp
from dharma.agents.healing.playbooks import PlaybookSet
from dharma.agents.healing.signals import Signal, to_alert, to_event
from dharma.sinks.asset_changes import AssetChangeSink
from dharma.sinks.base import STORE_ERRORS, SinkUnavailable
from dharma.sinks.cmdb import Cmdb
from dharma.sinks.incidents import IncidentStore
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.backpressure import Backpressure
from dharma.streams.errors import RejectedEvent
from dharma.streams.intake import check_events
from dharma.streams.records import now_ms
from dharma.streams.topics import ALERTS, INFRASTRUCTURE_EVENTS

logger = logging.getLogger(__name__)

T = TypeVar("T")


def alerts_until(latest: int) -> Callable[[EventT, Any], Signal | None]:
    """Validator of alerts dated no later than ``latest`` (ms)."""
    return lambda _event, raw: to_alert(raw, latest)


def events_until(latest: int) -> Callable[[EventT, Any], Signal | None]:
    """Validator of infrastructure events dated no later than ``latest`` (ms)."""
    return lambda _event, raw: to_event(raw, latest)


def register(app: faust.App, ctx: StreamContext, store: IncidentStore, cmdb: Cmdb,
             history: AssetChangeSink, playbooks: PlaybookSet) -> faust.types.AgentT:
    """Add the healing agent and its timer to ``app``."""
    worker, config, wire = ctx.settings.worker, ctx.settings.healing, ctx.wire
    topics = (ALERTS, INFRASTRUCTURE_EVENTS)
    source = app.topic(*(t.name for t in topics), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    dlqs = {t.name: raw_topic(app, t.dlq) for t in topics}
    backpressure = Backpressure.for_worker(lambda: app.consumer, [t.name for t in topics],
                                           ctx.metrics, worker, retry_on=SinkUnavailable)

    def emit_event(record: dict[str, Any]) -> None:
        ctx.emitter.emit(INFRASTRUCTURE_EVENTS.name,
                         wire.encode_key(INFRASTRUCTURE_EVENTS.key_subject, record["resource_id"]),
                         wire.encode(INFRASTRUCTURE_EVENTS.value_subject, record))

    def emit_alert(record: dict[str, Any]) -> None:
        ctx.emitter.emit(ALERTS.name, wire.encode_key(ALERTS.key_subject, record["fingerprint"]),
                         wire.encode(ALERTS.value_subject, record))

    healer = Healer(store, cmdb, history, playbooks, Publisher(emit_event, emit_alert), config,
                    ctx.metrics)
    follow_up = FollowUp(healer)
    lock = asyncio.Lock()

    async def guarded(op: Callable[[], Awaitable[T]]) -> T:
        """``op`` with the stores connected; a store's error as :class:`SinkUnavailable`."""
        try:
            await store.ready()
            await history.ready()
            return await op()
        except STORE_ERRORS as exc:
            store.lost()
            history.lost()
            raise SinkUnavailable(f"{store.name}: {exc!r}") from exc

    async def dead_letter(rejected: Sequence[tuple[EventT, RejectedEvent]]) -> None:
        for name, dlq in dlqs.items():
            await send_dead_letters(ctx, dlq, [(e, x) for e, x in rejected
                                               if e.message.topic == name])

    async def apply(signals: list[tuple[EventT, Signal]]) -> None:
        try:
            async with lock:
                refused = await backpressure.hold(
                    store.name, lambda: guarded(lambda: healer.handle(signals, now_ms())))
        except SinkUnavailable as exc:
            await dead_letter([(e, RejectedEvent("sink_error", str(exc))) for e, _ in signals])
            return
        await dead_letter(refused)

    @app.agent(source, name="healing")
    async def healing_agent(stream: faust.StreamT) -> None:
        """Incidents and guarded remediations from alerts and infrastructure events."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
                worker.batch_size, within=worker.batch_within_s):
            await ctx.resolve_schemas(events)
            latest = now_ms() + int(worker.max_future_skew_s * 1000)
            alerts = [e for e in events if e.message.topic == ALERTS.name]
            infra = [e for e in events if e.message.topic != ALERTS.name]
            ok_alerts, bad_alerts = check_events(ctx, alerts, ALERTS, alerts_until(latest))
            ok_infra, bad_infra = check_events(ctx, infra, INFRASTRUCTURE_EVENTS,
                                               events_until(latest))
            await dead_letter([*bad_alerts, *bad_infra])
            # facts (deployments, experiments, health) before the alerts they may guard
            signals = [(e, s) for e, s in [*ok_infra, *ok_alerts] if s is not None]
            if signals:
                await apply(signals)
            await ctx.emitter.flush()

    postponed = False

    @app.timer(config.tick_s)
    async def follow_up_tick() -> None:
        nonlocal postponed
        try:
            async with lock:
                await guarded(lambda: follow_up.tick(now_ms()))
        except SinkUnavailable as exc:
            if not postponed:  # once an outage, not once a tick
                logger.warning("healing follow-up postponed while a store is away: %s", exc)
            postponed = True
        else:
            if postponed:
                logger.warning("healing follow-up resumed")
            postponed = False
        await ctx.emitter.flush()

    return healing_agent
