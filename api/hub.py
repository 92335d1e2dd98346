"""Live subscriptions: events fanned out to subscribers, each with a bounded buffer.

The feed hands the hub batches of :class:`LiveEvent` from its thread
(:meth:`Hub.publish_threadsafe`, which never waits on a subscriber); the hub puts each
event in the buffer of every subscriber whose :class:`LiveFilter` matches it.  A full
buffer drops its oldest event and counts it: a slow or stalled reader loses events,
never slows the feed or another reader.  The subscriber side is plain asyncio.

>>> import asyncio
>>> async def demo():
...     hub = Hub(capacity=2)
...     sub = hub.subscribe(LiveFilter(frozenset({"alert"})))
...     hub.publish([live_event("alert", "alerts.notifications", 0, n, {"n": n}) for n in range(3)])
...     return [e.event_id for e in await sub.next_batch(1.0)], sub.dropped
>>> asyncio.run(demo())
(['alerts.notifications:0:1', 'alerts.notifications:0:2'], 1)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from dharma.api.live_metrics import LiveMetrics

__all__ = ["KINDS", "Hub", "LiveEvent", "LiveFilter", "Subscription", "live_event"]

logger = logging.getLogger(__name__)

#: What a live subscription may ask for.
KINDS = ("alert", "incident", "remediation", "decision", "prediction")
#: Events waiting for the event loop, in subscriber buffers' units (the loop stalled).
INBOX_BUFFERS = 10


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event as subscribers get it: its Server-Sent Events frame, built once, and
    the fields filters look at (None: the event has no such field)."""

    kind: str
    event_id: str
    frame: bytes
    severity: str | None = None
    resource: str | None = None
    user: str | None = None


def live_event(kind: str, topic: str, partition: int, offset: int, record: dict[str, Any],
               severity: str | None = None, resource: str | None = None,
               user: str | None = None) -> LiveEvent:
    """The event of ``record`` read at ``topic[partition]@offset``.

    Its data is one line of JSON (non-finite numbers as null), so nothing in a record
    can end the frame early or forge another event.

    >>> live_event("alert", "alerts.notifications", 1, 7, {"x": float("nan")}).frame
    b'event: alert\\nid: alerts.notifications:1:7\\ndata: {"x":null}\\n\\n'
    """
    event_id = f"{topic}:{partition}:{offset}"
    data = orjson.dumps(record)
    frame = b"event: %s\nid: %s\ndata: %s\n\n" % (kind.encode(), event_id.encode(), data)
    return LiveEvent(kind, event_id, frame, severity, resource, user)


@dataclass(frozen=True, slots=True)
class LiveFilter:
    """What a subscriber asked for: kinds, and optionally severities, a resource, a user.
    A filter given keeps only events that have the field and match it."""

    kinds: frozenset[str]
    severity: frozenset[str] | None = None
    resource: str | None = None
    user: str | None = None

    def matches(self, event: LiveEvent) -> bool:
        return (event.kind in self.kinds
                and (self.severity is None or event.severity in self.severity)
                and (self.resource is None or event.resource == self.resource)
                and (self.user is None or event.user == self.user))


class Subscription:
    """One subscriber's buffer of at most ``capacity`` events (drop-oldest)."""

    def __init__(self, hub: Hub, live_filter: LiveFilter, capacity: int) -> None:
        self.filter = live_filter
        self._hub = hub
        self._events: deque[LiveEvent] = deque(maxlen=capacity)
        self._ready = asyncio.Event()
        #: Events this subscriber lost to a full buffer.
        self.dropped = 0

    def offer(self, event: LiveEvent) -> bool:
        """Buffer ``event``; False when that dropped the oldest one."""
        full = len(self._events) == self._events.maxlen
        self._events.append(event)
        self._ready.set()
        if full:
            self.dropped += 1
        return not full

    async def next_batch(self, timeout: float) -> list[LiveEvent]:
        """Every event buffered, waiting up to ``timeout`` seconds for one ([] if none)."""
        if not self._events:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return []
        batch = list(self._events)
        self._events.clear()
        self._ready.clear()
        return batch

    def wake(self) -> None:
        """End a wait in :meth:`next_batch` now (with what is buffered, maybe nothing)."""
        self._ready.set()

    @property
    def active(self) -> bool:
        """Still subscribed (the hub closes with the app)."""
        return self._hub.has(self)

    def close(self) -> None:
        """Leave the hub (idempotent)."""
        self._hub.unsubscribe(self)


class Hub:
    """Subscribers and the fan-out to them; ``capacity`` events buffered per subscriber."""

    def __init__(self, capacity: int, metrics: LiveMetrics | None = None) -> None:
        self.capacity = capacity
        self.metrics = metrics or LiveMetrics()
        self._subscribers: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: deque[LiveEvent] = deque()
        self._lock = threading.Lock()
        self._drain_scheduled = False
        #: Events lost by any subscriber (and by the inbox, if the loop stalled).
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop subscribers live on (where :meth:`publish_threadsafe` delivers)."""
        self._loop = loop

    def subscribe(self, live_filter: LiveFilter) -> Subscription:
        """A new subscription (call on the loop)."""
        subscription = Subscription(self, live_filter, self.capacity)
        self._subscribers.add(subscription)
        self.metrics.subscribers.set(len(self._subscribers))
        return subscription

    def has(self, subscription: Subscription) -> bool:
        return subscription in self._subscribers

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        self.metrics.subscribers.set(len(self._subscribers))

    def _count_dropped(self, n: int) -> None:
        self.dropped += n
        self.metrics.dropped.inc(n)

    def publish(self, events: Sequence[LiveEvent]) -> None:
        """Buffer ``events`` for every subscriber they match (call on the loop)."""
        lost = 0
        for subscription in list(self._subscribers):
            keep = subscription.filter.matches
            for event in events:
                if keep(event) and not subscription.offer(event):
                    lost += 1
        if lost:
            self._count_dropped(lost)

    def publish_threadsafe(self, events: Collection[LiveEvent]) -> None:
        """:meth:`publish` from another thread: queued for the loop, never waiting on
        it; while the loop is stalled, the queue keeps the newest events only."""
        loop = self._loop
        if loop is None or not events or not self._subscribers:
            return
        limit = INBOX_BUFFERS * self.capacity
        with self._lock:
            self._inbox.extend(events)
            overflow = len(self._inbox) - limit
            for _ in range(max(0, overflow)):
                self._inbox.popleft()
            schedule, self._drain_scheduled = not self._drain_scheduled, True
        if overflow > 0:
            self._count_dropped(overflow)
        if schedule:
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop closed: nobody is listening any more
                logger.debug("live hub: event loop closed, events not delivered")

    def _drain(self) -> None:
        with self._lock:
            events, self._inbox = list(self._inbox), deque()
            self._drain_scheduled = False
        self.publish(events)

    def close(self) -> None:
        """Forget every subscriber (their streams end now)."""
        subscribers, self._subscribers = list(self._subscribers), set()
        for subscription in subscribers:
            subscription.wake()
        self.metrics.subscribers.set(0)
