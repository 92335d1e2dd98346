"""Bills agent on ``billing.focus`` (Faust wiring only).

Per batch: decode and check each FOCUS line (:func:`~dharma.agents.cost.focus.billed_row`:
the rules a file's line is imported by, and an ``x_line_id`` that must be the hash of
the line's content); bad records go to ``billing.focus.dlq`` with the reason; the rest
are stored in ``cost_billed`` once per line id.  A store that is away holds the batch
(partitions paused) up to the worker's outage limit; then the batch is dead-lettered as
``sink_error``, and ``dharma dlq redrive`` stores it later (lines stored already are
not stored twice).
"""

from __future__ import annotations

import faust
from faust.types import EventT

from dharma.agents.cost.focus import billed_row
from dharma.sinks.base import SinkUnavailable
from dharma.sinks.bills import BilledRow, BillStore
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.backpressure import Backpressure
from dharma.streams.errors import RejectedEvent
from dharma.streams.intake import check_events
from dharma.streams.topics import BILLING_FOCUS

__all__ = ["register"]

Lines = list[tuple[EventT, BilledRow]]


def register(app: faust.App, ctx: StreamContext, bills: BillStore) -> faust.types.AgentT:
    """Add the bills agent to ``app``: checked FOCUS lines to ``bills``."""
    worker, metrics = ctx.settings.worker, ctx.metrics
    source, dlq = raw_topic(app, BILLING_FOCUS), raw_topic(app, BILLING_FOCUS.dlq)
    backpressure = Backpressure.for_worker(lambda: app.consumer, [source.get_topic_name()],
                                           metrics, worker, retry_on=SinkUnavailable)

    async def store(lines: Lines) -> None:
        """Store the lines (held while PostgreSQL is away), or dead-letter them all as
        ``sink_error`` when the hold gives up."""
        rows = [row for _, row in lines]
        try:
            stored = await backpressure.hold(bills.name, lambda: bills.flush(rows))
        except SinkUnavailable as exc:
            failed = RejectedEvent("sink_error", str(exc))
            await send_dead_letters(ctx, dlq, [(event, failed) for event, _ in lines])
            return
        metrics.sink_rows.labels(bills.name).inc(stored)

    @app.agent(source, name="cost-bills")
    async def cost_bills(stream: faust.StreamT) -> None:
        """Store the FOCUS bill lines of billing.focus in PostgreSQL (cost_billed)."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
                worker.batch_size, within=worker.batch_within_s):
            await ctx.resolve_schemas(events)
            lines, rejected = check_events(ctx, events, BILLING_FOCUS,
                                           lambda _event, raw: billed_row(raw))
            await send_dead_letters(ctx, dlq, rejected)
            if lines:
                await store(lines)
            await ctx.emitter.flush()

    return cost_bills
