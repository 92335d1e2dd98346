"""Webhook executor agent on ``infrastructure.events`` (Faust wiring and the order of
its I/O).

Per batch: decode (bad input is dead-lettered; records that are not remediation
requests, and dry-run requests, pass by), then for each remediation id once:

1. claim it in ``remediation_executions`` (at most once per id, before any call);
   while PostgreSQL is away the batch is held, then dead-lettered as ``sink_error``:
   nothing is called without a claim;
2. a request claimed now is either refused (unknown action, no webhook) or expired
   (older than ``DHARMA_EXECUTOR_MAX_AGE_S``), reported ``failed``; or reported
   ``started``, POSTed, and reported ``succeeded`` or ``failed`` with what the webhook
   answered;
3. a request claimed before (redelivered, replayed after a restart, sent twice) is not
   executed again: its stored reports are published again, the same records; if its
   call was cut short (the worker died during it) it is reported ``failed`` ("outcome
   unknown"), not called a second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import faust
from faust.types import EventT

from dharma.agents.executor.logic import Request, payload, refusal, reports, to_request
from dharma.agents.executor.state import count_label, stored_request
from dharma.sinks.base import SinkUnavailable
from dharma.sinks.executions import Claim, Execution, ExecutionStore, Outcome
from dharma.sinks.webhook import Webhook
from dharma.streams.app import StreamContext, raw_topic, send_dead_letters
from dharma.streams.backpressure import Backpressure
from dharma.streams.errors import RejectedEvent
from dharma.streams.intake import check_events
from dharma.streams.records import now_ms
from dharma.streams.topics import INFRASTRUCTURE_EVENTS

logger = logging.getLogger(__name__)

T = TypeVar("T")
Batch = list[tuple[EventT, Request]]

#: The reason of a request whose call a stopped worker cut short.
CUT_SHORT = "outcome unknown: the executor stopped during the call; not called again"


def requests_until(latest: int) -> Callable[[EventT, Any], Request | None]:
    """Validator of a batch: its remediation requests, none dated after ``latest`` (ms)."""
    return lambda _event, raw: to_request(raw, latest)


def register(app: faust.App, ctx: StreamContext, executions: ExecutionStore,
             webhook: Webhook) -> faust.types.AgentT:
    """Add the executor agent to ``app``: claims in ``executions``, calls to ``webhook``."""
    worker, conf, metrics = ctx.settings.worker, ctx.settings.executor, ctx.metrics
    source, dlq = raw_topic(app, INFRASTRUCTURE_EVENTS), raw_topic(app, INFRASTRUCTURE_EVENTS.dlq)
    backpressure = Backpressure.for_worker(lambda: app.consumer, [source.get_topic_name()],
                                           metrics, worker, retry_on=SinkUnavailable)
    in_flight, flushing = asyncio.Semaphore(conf.concurrency), asyncio.Lock()
    skew_ms = int(worker.max_future_skew_s * 1000)
    if webhook.url is None:
        logger.error("no DHARMA_EXECUTOR_URL: every request will be reported failed")

    def held(op: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        return backpressure.hold(executions.name, lambda: executions.call(op))

    def publish(records: Iterable[dict[str, Any]]) -> None:
        wire, subject = ctx.wire, INFRASTRUCTURE_EVENTS
        for record in records:
            ctx.emitter.emit(subject.name, wire.encode_key(subject.key_subject,
                                                           record["resource_id"]),
                             wire.encode(subject.value_subject, record))

    async def claim(batch: Batch, claims: list[Claim]
                    ) -> tuple[set[str], dict[str, Execution]] | None:
        """The ids claimed now and the rows of those claimed before (None: store away,
        the batch dead-lettered)."""
        try:
            new = await held(lambda: executions.claim(claims))
            before = sorted({c.remediation_id for c in claims} - new)
            return new, await held(lambda: executions.executions(before))
        except SinkUnavailable as exc:
            failed = RejectedEvent("sink_error", f"not claimed, not executed: {exc}")
            await send_dead_letters(ctx, dlq, [(event, failed) for event, _ in batch])
            return None

    async def execute(batch: Batch) -> None:
        now, max_age_ms = now_ms(), int(conf.max_age_s * 1000)
        requests = {r.remediation_id: r for _, r in reversed(batch)}  # the first one wins
        refused = {rid: refusal(r, now, max_age_ms) for rid, r in requests.items()}
        claims = [Claim(rid, r.target, r.event_id, r.to_dict(), None if refused[rid] else now)
                  for rid, r in requests.items()]
        if (claimed := await claim(batch, claims)) is None:
            return
        new, seen = claimed
        calls = [requests[rid] for rid in sorted(new) if not refused[rid]]
        publish(reports(r, now, None, None, None)[0] for r in calls)
        await flush()  # ``started`` is out before the call
        ended = [Outcome(rid, "failed", why, now) for rid in sorted(new) if (why := refused[rid])]
        ended += [Outcome(rid, "failed", CUT_SHORT, now) for rid, e in seen.items()
                  if e.outcome is None]
        others = {rid: r for rid, r in requests.items() if rid not in {c.remediation_id
                                                                         for c in calls}}
        await conclude(ended, others, seen, new)
        await asyncio.gather(*(call(r, new) for r in calls))

    async def call(request: Request, new: set[str]) -> None:
        """POST ``request``, then record and report its outcome (each call on its own: a
        slow webhook does not hold the reports of the others)."""
        async with in_flight:
            answer = await webhook.post(payload(request, conf.payload_style),
                                        request.remediation_id)
        outcome = Outcome(request.remediation_id, "succeeded" if answer.ok else "failed",
                          answer.detail, now_ms())
        await conclude([outcome], {request.remediation_id: request}, {}, new, called=True)

    async def conclude(outcomes: list[Outcome], requests: dict[str, Request],
                       seen: dict[str, Execution], new: set[str], called: bool = False) -> None:
        """Record ``outcomes`` and publish the reports of ``requests`` as stored (a call's
        ``started`` aside: it went out before the call)."""
        for rid, e in (await settle(outcomes, requests, seen)).items():
            records = reports(stored_request(e, requests.get(rid)), e.started_ms, e.outcome,
                              e.reason, e.finished_ms)
            publish(r for r in records if not called or r["attributes"]["status"] != "started")
            metrics.executor_requests.labels(count_label(e, rid in new)).inc()
        await flush()

    async def settle(outcomes: list[Outcome], requests: dict[str, Request],
                     seen: dict[str, Execution]) -> dict[str, Execution]:
        """Record the outcomes; the stored rows of ``requests`` (the first outcome of each
        id stays).  With the store away, the rows as this worker knows them."""
        try:
            await held(lambda: executions.finish(outcomes))
            return await held(lambda: executions.executions(sorted(requests)))
        except SinkUnavailable as exc:
            logger.error("outcomes not stored, published as known: %s", exc)
            known = dict(seen)
            for o in outcomes:
                r = requests[o.remediation_id]
                e = known.get(o.remediation_id) or Execution(
                    o.remediation_id, r.event_id, r.to_dict(), None, None, None, None)
                known[o.remediation_id] = e._replace(outcome=o.outcome, reason=o.reason,
                                                     finished_ms=o.finished_ms)
            return known

    async def flush() -> None:
        async with flushing:  # calls end concurrently; the emitter flushes one at a time
            await ctx.emitter.flush()

    @app.agent(source, name="execute-remediations")
    async def executor_agent(stream: faust.StreamT) -> None:
        """Run the remediation requests on infrastructure.events through the webhook."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
                worker.batch_size, within=worker.batch_within_s):
            await ctx.resolve_schemas(events)
            checked, rejected = check_events(ctx, events, INFRASTRUCTURE_EVENTS,
                                             requests_until(now_ms() + skew_ms))
            await send_dead_letters(ctx, dlq, rejected)
            if batch := [(e, r) for e, r in checked if r is not None]:
                await execute(batch)
            await flush()

    return executor_agent
