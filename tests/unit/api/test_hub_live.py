"""Properties of the live hub: drop-oldest per subscriber, counted; filters; a stalled
subscriber costs nobody else; events from another thread arrive; closing ends waits."""

from __future__ import annotations

import asyncio
import threading

from hypothesis import given
from hypothesis import strategies as st

from dharma.api.hub import Hub, LiveEvent, LiveFilter, live_event

ALERTS = LiveFilter(frozenset({"alert"}))


def _events(n: int, kind: str = "alert", **fields: str) -> list[LiveEvent]:
    return [live_event(kind, "t", 0, i, {"i": i}, **fields) for i in range(n)]


@given(capacity=st.integers(1, 30), sizes=st.lists(st.integers(0, 40), max_size=5))
def test_a_subscriber_keeps_the_newest_and_counts_what_it_lost(
        capacity: int, sizes: list[int]) -> None:
    async def run() -> None:
        hub = Hub(capacity)
        sub = hub.subscribe(ALERTS)
        sent: list[str] = []
        for size in sizes:
            batch = [live_event("alert", "t", 0, len(sent) + i, {}) for i in range(size)]
            sent += [e.event_id for e in batch]
            hub.publish(batch)
        got = await sub.next_batch(0.01)
        assert [e.event_id for e in got] == sent[-capacity:] if sent else got == []
        assert sub.dropped == hub.dropped == max(0, len(sent) - capacity)
        assert hub.metrics.dropped._value.get() == hub.dropped

    asyncio.run(run())


def test_filters_keep_only_events_with_matching_fields() -> None:
    critical = LiveFilter(frozenset({"alert", "decision"}), frozenset({"critical"}), "web-01")
    user = LiveFilter(frozenset({"decision"}), user="u1")
    events = {
        "match": live_event("alert", "t", 0, 1, {}, severity="critical", resource="web-01"),
        "severity": live_event("alert", "t", 0, 2, {}, severity="warning", resource="web-01"),
        "resource": live_event("alert", "t", 0, 3, {}, severity="critical", resource="db-01"),
        "kind": live_event("incident", "t", 0, 4, {}, severity="critical", resource="web-01"),
        "no severity": live_event("decision", "t", 0, 5, {}, resource="web-01", user="u1"),
    }
    assert [k for k, e in events.items() if critical.matches(e)] == ["match"]
    assert [k for k, e in events.items() if user.matches(e)] == ["no severity"]


def test_a_stalled_subscriber_costs_nobody_else_and_leaving_cleans_up() -> None:
    async def run() -> None:
        hub = Hub(3)
        stalled, reader = hub.subscribe(ALERTS), hub.subscribe(ALERTS)
        for event in _events(10):
            hub.publish([event])
            assert [e.event_id for e in await reader.next_batch(0.01)] == [event.event_id]
        assert (stalled.dropped, reader.dropped, hub.subscribers) == (7, 0, 2)
        stalled.close()
        stalled.close()
        assert hub.subscribers == 1 and not stalled.active and reader.active

    asyncio.run(run())


def test_events_from_another_thread_arrive_on_the_loop() -> None:
    async def run() -> None:
        hub = Hub(100)
        hub.bind(asyncio.get_running_loop())
        sub = hub.subscribe(ALERTS)
        def feed() -> None:
            for event in _events(50):
                hub.publish_threadsafe([event])

        thread = threading.Thread(target=feed)
        thread.start()
        got: list[LiveEvent] = []
        while len(got) < 50:
            batch = await sub.next_batch(5.0)
            assert batch, "events published from a thread never arrived"
            got += batch
        thread.join()
        assert [e.event_id for e in got] == [f"t:0:{i}" for i in range(50)]

    asyncio.run(run())


def test_closing_the_hub_ends_every_wait_at_once() -> None:
    async def run() -> None:
        hub = Hub(5)
        sub = hub.subscribe(ALERTS)
        waiting = asyncio.create_task(sub.next_batch(60.0))
        await asyncio.sleep(0)
        hub.close()
        assert await asyncio.wait_for(waiting, 1.0) == []
        assert not sub.active and hub.subscribers == 0

    asyncio.run(run())


def test_a_frame_cannot_be_forged_by_a_record() -> None:
    event = live_event("alert", "t", 1, 2, {"summary": "x\n\nevent: decision\ndata: {}"})
    assert event.frame.count(b"\n\n") == 1 and event.frame.endswith(b"\n\n")
