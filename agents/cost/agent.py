"""Cost agents on ``infrastructure.events`` and ``metrics.raw`` (Faust wiring only; the
accrual is :class:`~dharma.agents.cost.accrual.Accountant`).

- ``cost``: asset lifecycle events into each asset's ledger (a changelog-backed
  table); a late event corrects the stored rows it changes.  Other event types pass by.
- ``cost-usage``: the hourly maximum of the utilisation metrics per asset, for
  recommendations.
- A timer accrues every local asset up to the last closed hour
  (``DHARMA_COST_TICK_S``).
- The schedule (:class:`~dharma.agents.cost.schedule.Planner`) on the leader, every
  ``DHARMA_COST_SCHEDULE_S``: forecasts, recommendations, budget and cost-anomaly alerts.

Bad input is dead-lettered with its reason.  A store that is away holds the batch
(partitions paused) up to the worker's outage limit; then the batch is dead-lettered as
``sink_error``, and ``dharma dlq redrive`` applies it again (rows are idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import faust
from faust.types import EventT

from dharma.agents.cost.accrual import Accountant
from dharma.agents.cost.catalogue import Catalogue
from dharma.agents.cost.forecast import warm
from dharma.agents.cost.logic import Lifecycle
from dharma.agents.cost.schedule import Planner
from dharma.agents.cost.signals import hourly_maxima, to_lifecycle, to_usage
from dharma.agents.cost.state import ledger_table
from dharma.sinks.base import STORE_ERRORS, SinkUnavailable
from dharma.sinks.budgets import BudgetStore
from dharma.sinks.costs import CostStore, UsageRow
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.backpressure import Backpressure
from dharma.streams.errors import RejectedEvent
from dharma.streams.intake import check_events
from dharma.streams.records import now_ms, validate_metric
from dharma.streams.topics import ALERTS, INFRASTRUCTURE_EVENTS, METRICS_RAW, PREDICTIONS

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Assets accrued under one hold of the store: the lifecycle batches wait no longer.
TICK_SLICE = 200
#: Longest wait for the schedule's first run after a worker starts (seconds).
FIRST_RUN_S = 60.0


def lifecycle_until(latest: int) -> Callable[[EventT, Any], Lifecycle | None]:
    """Validator of asset events dated no later than ``latest`` (ms)."""
    return lambda _event, raw: to_lifecycle(raw, latest)


def usage_of(metrics: tuple[str, ...], skew_ms: int) -> Callable[[EventT, Any], UsageRow | None]:
    """Validator of utilisation samples of ``metrics`` (none beyond ``skew_ms`` ahead)."""
    now = now_ms()
    return lambda _event, raw: to_usage(validate_metric(raw, now, skew_ms), metrics)


def _holder(app: faust.App, ctx: StreamContext, store: CostStore, topic: str
            ) -> Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]:
    """``held(op)``: ``op`` with the store connected, its batch held through an outage
    (one lock per agent and its timer: the accrued marks are shared)."""
    backpressure = Backpressure.for_worker(lambda: app.consumer, [topic], ctx.metrics,
                                           ctx.settings.worker, retry_on=SinkUnavailable)
    lock = asyncio.Lock()

    async def held(op: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            try:
                await store.ready()
                return await op()
            except STORE_ERRORS as exc:
                store.lost()
                raise SinkUnavailable(f"{store.name}: {exc!r}") from exc
        async with lock:
            return await backpressure.hold(store.name, attempt)

    return held


async def _give_up(ctx: StreamContext, dlq: faust.TopicT, events: Sequence[EventT],
                   why: str) -> None:
    failed = RejectedEvent("sink_error", why)
    await send_dead_letters(ctx, dlq, [(e, failed) for e in events])


def register(app: faust.App, ctx: StreamContext, store: CostStore, planned: CostStore,
             budgets: BudgetStore, catalogue: Catalogue) -> faust.types.AgentT:
    """Add the cost agent (lifecycles), its accrual timer and the schedule to ``app``;
    ``planned``: the schedule's own connection to the cost rows."""
    worker, config = ctx.settings.worker, ctx.settings.cost
    infra = raw_topic(app, INFRASTRUCTURE_EVENTS)
    infra_dlq = raw_topic(app, INFRASTRUCTURE_EVENTS.dlq)
    held = _holder(app, ctx, store, INFRASTRUCTURE_EVENTS.name)
    accountant = Accountant(ledger_table(app, ctx), store, ctx.metrics, config.currency)
    skew = int(worker.max_future_skew_s * 1000)

    @app.agent(infra, name="cost")
    async def cost_agent(stream: faust.StreamT) -> None:
        """Asset lifecycles into ledgers; late events correct the stored cost."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
                worker.batch_size, within=worker.batch_within_s):
            await ctx.resolve_schemas(events)
            checked, rejected = check_events(ctx, events, INFRASTRUCTURE_EVENTS,
                                             lifecycle_until(now_ms() + skew))
            await send_dead_letters(ctx, infra_dlq, rejected)
            if steps := [(e, s) for e, s in checked if s is not None]:
                try:
                    refused = await held(partial(accountant.apply, steps))
                except SinkUnavailable as exc:
                    await _give_up(ctx, infra_dlq, [e for e, _ in steps], str(exc))
                else:
                    await send_dead_letters(ctx, infra_dlq, refused)
            await ctx.emitter.flush()

    postponed = False

    @app.timer(config.tick_s)
    async def accrue() -> None:
        """Accrue the local assets, a slice at a time: batches go on in between."""
        nonlocal postponed
        now, assets = now_ms(), accountant.local()
        try:
            for i in range(0, len(assets), TICK_SLICE):
                await held(partial(accountant.tick, now, assets[i:i + TICK_SLICE]))
        except SinkUnavailable as exc:
            if not postponed:  # once an outage, not once a tick
                logger.warning("cost accrual postponed while the store is away: %s", exc)
            postponed = True
        else:
            postponed = False
        await ctx.emitter.flush()

    _schedule(app, ctx, Planner(planned, budgets, config, catalogue, *_publishers(ctx)))
    return cost_agent


def _publishers(ctx: StreamContext) -> tuple[Callable[[str, dict[str, Any]], None],
                                             Callable[[dict[str, Any]], None]]:
    """Emit a prediction (union branch, record) and an alert."""
    wire = ctx.wire

    def predict(branch: str, record: dict[str, Any]) -> None:
        ctx.emitter.emit(PREDICTIONS.name,
                         wire.encode_key(PREDICTIONS.key_subject, record["prediction_id"]),
                         wire.encode(PREDICTIONS.value_subject, (branch, record)))

    def alert(record: dict[str, Any]) -> None:
        ctx.emitter.emit(ALERTS.name, wire.encode_key(ALERTS.key_subject, record["fingerprint"]),
                         wire.encode(ALERTS.value_subject, record))

    return predict, alert


def _schedule(app: faust.App, ctx: StreamContext, planner: Planner) -> None:
    """Warm the forecasting models now (the worker has not started); run the planner every
    ``DHARMA_COST_SCHEDULE_S`` on the leader (one worker of the topology publishes), the
    first run within a minute."""
    config = ctx.settings.cost
    last_run: float | None = None
    failing = opened = False

    try:  # before the worker consumes: its first batches do not wait on the imports
        logger.info("forecast models loaded in %.1f s", warm())
    except Exception:  # the first forecast loads them instead
        logger.exception("forecast models not loaded at start")

    @app.timer(min(config.schedule_s, FIRST_RUN_S), on_leader=True)
    async def plan() -> None:
        nonlocal last_run, failing, opened
        now = time.monotonic()
        if last_run is not None and now - last_run < config.schedule_s:
            return
        try:
            await planner.costs.ready()
            if not opened:  # a pool: it replaces broken connections itself
                await planner.budgets.setup()
                opened = True
            run = await planner.run(now_ms())
            await ctx.emitter.flush()  # published before stored: a crash republishes
            await planner.keep(run)
        except STORE_ERRORS as exc:
            planner.costs.lost()
            if not failing:
                logger.warning("cost schedule postponed while a store is away: %r", exc)
            failing = True
            return
        except Exception:  # a run that breaks must not stop the worker's accrual
            logger.exception("cost schedule run failed; the next one is due in %.0f s",
                             config.schedule_s)
            last_run = now
            return
        failing = False
        last_run = now
        logger.info("cost schedule: %d forecasts, %d recommendations, %d alerts",
                    len(run.forecasts), len(run.recommendations), len(run.alerts))


def register_usage(app: faust.App, ctx: StreamContext, store: CostStore) -> faust.types.AgentT:
    """Add the usage agent to ``app`` (it dead-letters the ``metrics.raw`` input it
    rejects: the only reader of that topic in its topology)."""
    worker, config = ctx.settings.worker, ctx.settings.cost
    metrics, metrics_dlq = raw_topic(app, METRICS_RAW), raw_topic(app, METRICS_RAW.dlq)
    held = _holder(app, ctx, store, METRICS_RAW.name)
    skew = int(worker.max_future_skew_s * 1000)

    @app.agent(metrics, name="cost-usage")
    async def usage_agent(stream: faust.StreamT) -> None:
        """Hourly utilisation maxima per asset."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
                worker.batch_size, within=worker.batch_within_s):
            await ctx.resolve_schemas(events)
            usage, rejected = check_events(ctx, events, METRICS_RAW,
                                           usage_of(config.usage_metrics, skew))
            await send_dead_letters(ctx, metrics_dlq, rejected)
            rows: list[UsageRow] = hourly_maxima([r for _, r in usage if r is not None])
            if rows:
                try:
                    await held(partial(store.record_usage, rows))
                except SinkUnavailable as exc:
                    await _give_up(ctx, metrics_dlq, [e for e, _ in usage], str(exc))
            await ctx.emitter.flush()

    return usage_agent
