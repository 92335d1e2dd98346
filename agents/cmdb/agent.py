"""CMDB agent on ``infrastructure.events`` (Faust wiring only).

Per batch: decode and validate (bad input is dead-lettered; deployments, health checks
and the other event types are not the CMDB's and pass by), append the asset and
dependency changes to ``asset_changes``, read back the whole history of every asset
and edge the batch touched, and write the states they give
(:func:`~dharma.agents.cmdb.logic.project_histories`) to the graph.  A store that is
away holds the batch (partitions paused) up to the worker's outage limit; then the
batch is dead-lettered as ``sink_error``, and ``dharma dlq redrive`` applies it again
(changes already stored are not stored twice).  An event id reused for another
change is dead-lettered as a conflict: the history keeps the first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust
from faust.types import EventT

from dharma.agents.cmdb.logic import AssetState, Change, EdgeState, to_change
from dharma.agents.cmdb.state import graph_rows, project_stored, row_of
from dharma.sinks.asset_changes import AssetChangeSink, ChangeRow
from dharma.sinks.base import SinkUnavailable
from dharma.sinks.cmdb import Cmdb
from dharma.sinks.graph import GraphSink
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.backpressure import Backpressure
from dharma.streams.errors import ContractViolation, RejectedEvent
from dharma.streams.intake import check_events
from dharma.streams.records import now_ms
from dharma.streams.topics import INFRASTRUCTURE_EVENTS

logger = logging.getLogger(__name__)

Changes = list[tuple[EventT, Change]]
T = TypeVar("T")

#: How often the stale-asset gauge is refreshed.
STALE_REFRESH_S = 30.0


def changes_until(latest: int) -> Callable[[EventT, Any], Change | None]:
    """Validator of a batch: its events as changes, none dated after ``latest`` (ms)."""
    return lambda _event, raw: to_change(raw, latest)


def register(app: faust.App, ctx: StreamContext, changes: AssetChangeSink, graph: GraphSink,
             cmdb: Cmdb) -> faust.types.AgentT:
    """Add the CMDB agent to ``app``: history to ``changes``, states to ``graph``; ``cmdb``
    counts stale assets for the metrics."""
    worker, metrics = ctx.settings.worker, ctx.metrics
    source, dlq = raw_topic(app, INFRASTRUCTURE_EVENTS), raw_topic(app, INFRASTRUCTURE_EVENTS.dlq)
    backpressure = Backpressure.for_worker(lambda: app.consumer, [source.get_topic_name()],
                                           metrics, worker, retry_on=SinkUnavailable)

    def held(sink: AssetChangeSink, op: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        return backpressure.hold(sink.name, lambda: sink.call(op))

    async def give_up(batch: Changes, why: str) -> None:
        failed = RejectedEvent("sink_error", why)
        await send_dead_letters(ctx, dlq, [(event, failed) for event, _ in batch])

    async def store(batch: Changes) -> Changes:
        """Append the changes; those now in the history (replays included), without the
        ones whose event id the history (or this batch, earlier) holds for another change."""
        written = [(event, change, row_of(change)) for event, change in batch]
        rows: dict[str, ChangeRow] = {}
        for _, change, row in written:
            rows.setdefault(change.event_id, row)
        try:
            new = await held(changes, lambda: changes.append(list(rows.values())))
            stored = await held(changes, lambda: changes.stored(sorted(rows.keys() - new)))
        except SinkUnavailable as exc:
            await give_up(batch, str(exc))
            return []
        for event_id in new:
            metrics.cmdb_changes.labels(rows[event_id].kind).inc()
        kept = {**rows, **stored}
        await send_dead_letters(ctx, dlq, [
            (event, ContractViolation(f"conflict: event id {c.event_id} is stored for "
                                      "another change"))
            for event, c, row in written if kept[c.event_id] != row])
        return [(event, c) for event, c, row in written if kept[c.event_id] == row]

    async def write_graph(assets: list[AssetState], edges: list[EdgeState]) -> int:
        with metrics.sink_write_seconds.labels(graph.name).time():
            return await graph.flush([graph_rows(assets, edges)])

    async def apply(batch: Changes) -> None:
        """Write the state of every asset and edge ``batch`` touched, from its history."""
        keys = sorted({c.key for _, c in batch})
        try:
            histories = await held(changes, lambda: changes.histories(keys))
            assets, edges = project_stored(histories)
            await backpressure.hold(graph.name, lambda: write_graph(assets, edges))
        except SinkUnavailable as exc:
            await give_up(batch, f"stored, not applied to the graph: {exc}")

    @app.agent(source, name="cmdb")
    async def cmdb_agent(stream: faust.StreamT) -> None:
        """Keep the CMDB graph and its change history from infrastructure.events."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
                worker.batch_size, within=worker.batch_within_s):
            await ctx.resolve_schemas(events)
            latest = now_ms() + int(worker.max_future_skew_s * 1000)
            checked, rejected = check_events(ctx, events, INFRASTRUCTURE_EVENTS,
                                             changes_until(latest))
            await send_dead_letters(ctx, dlq, rejected)
            if batch := await store([(e, c) for e, c in checked if c is not None]):
                await apply(batch)
            await ctx.emitter.flush()

    @app.timer(STALE_REFRESH_S)
    async def count_stale_assets() -> None:
        try:
            metrics.cmdb_stale_assets.set(await cmdb.stale_count())
        except Exception as exc:  # a graph that blinks leaves the gauge as it was
            logger.warning("stale assets not counted: %r", exc)

    return cmdb_agent
