"""Decoding and validating a consumed batch: one protocol for every capability.

A validator takes the event and its decoded value and returns the valid record,
or *raises* a :class:`~dharma.streams.errors.RejectedEvent` (a
:class:`~dharma.streams.errors.ContractViolation`, or a subclass carrying what
the capability needs to answer the record anyway); :func:`check_events` splits
the batch into accepted records and rejections (to dead-letter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from faust.types import EventT

from dharma.streams.app import StreamContext, split_batch
from dharma.streams.errors import RejectedEvent
from dharma.streams.records import MetricSample, now_ms, validate_metric
from dharma.streams.topics import METRICS_RAW, TopicSpec

__all__ = ["Checked", "check_events", "check_metrics"]

T = TypeVar("T")

#: Accepted ``(event, record)`` pairs and rejected ``(event, reason)`` pairs of a batch.
Checked = tuple[list[tuple[EventT, T]], list[tuple[EventT, RejectedEvent]]]


def check_events(ctx: StreamContext, events: Sequence[EventT], spec: TopicSpec,
                 validate: Callable[[EventT, Any], T]) -> Checked[T]:
    """Decode each event's value (``spec``'s value subject) and validate it."""
    decode, subject = ctx.wire.decode, spec.value_subject

    def parse(event: EventT) -> T:
        return validate(event, decode(subject, event.message.value))

    return split_batch(events, parse)


def check_metrics(ctx: StreamContext, events: Sequence[EventT]) -> Checked[MetricSample]:
    """Decode and validate a batch of ``metrics.raw`` (no sample later than the worker's
    ``max_future_skew_s`` ahead of its clock)."""
    now, skew = now_ms(), int(ctx.settings.worker.max_future_skew_s * 1000)
    return check_events(ctx, events, METRICS_RAW,
                        lambda _event, raw: validate_metric(raw, now, skew))
