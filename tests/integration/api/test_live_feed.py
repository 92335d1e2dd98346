"""The API's feed: it rebuilds its views from the lookback when it (re)starts, without
counting anything twice; records older than the lookback stay out; views stay bounded;
a registry that is away loses nothing."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from live_helpers import Records, now_ms

from dharma.api.feed import Feed
from dharma.api.hub import Hub
from dharma.api.series_view import SeriesView
from dharma.api.views import AlertsView, LiveViews

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def _views(max_alerts: int = 10_000, max_series: int = 10_000) -> LiveViews:
    return LiveViews(AlertsView(max_alerts), SeriesView(20, max_series, 150))


@pytest.fixture
def feeds(settings: Any) -> Iterator[Callable[..., Feed]]:
    """Factory of started feeds over fresh views; all stopped afterwards."""
    started: list[Feed] = []

    def start(views: LiveViews, **api: Any) -> Feed:
        tuned = settings.model_copy(update={"api": settings.api.model_copy(update=api)})
        started.append(Feed(tuned, views, Hub(10)).start())
        return started[-1]

    yield start
    for feed in started:
        feed.stop()


def test_a_restarted_feed_rebuilds_its_views_from_the_lookback_once(
        settings: Any, feeds: Callable[..., Feed], poll: Any) -> None:
    records = Records(settings)
    source = f"re-{uuid.uuid4().hex[:6]}"
    reason = f"bad value {source}"
    alert = records.alert(source)
    for n in range(5):
        records.prediction(source, "cpu", now_ms() - (5 - n) * 1000, float(n))
    records.dead_letter("metrics.raw", reason)
    records.flush()

    def state(views: LiveViews) -> tuple[Any, ...]:
        detail = views.series.detail(f"{source}|cpu")
        return ([a["alert_id"] for a in views.alerts.query(resource=source)],
                detail and len(detail["points"]),
                [d["count"] for d in views.dead_letters.rows() if d["reason"] == reason])

    expected = ([alert["alert_id"]], 5, [1])
    views = _views()
    feed = feeds(views)
    poll(lambda: feed.caught_up.is_set() and state(views) == expected, "the first feed sees all",
         describe=lambda: repr(state(views)))
    feed.stop()
    feed.start()  # the same views: cleared and read back again, nothing counted twice
    poll(lambda: feed.caught_up.is_set() and state(views) == expected, "read back again",
         describe=lambda: repr(state(views)))
    fresh = _views()
    feeds(fresh)  # another process's feed: the same views from the topics alone
    poll(lambda: state(fresh) == expected, "a new feed rebuilds the views",
         describe=lambda: repr(state(fresh)))


def test_records_older_than_the_lookback_stay_out(
        settings: Any, feeds: Callable[..., Feed], poll: Any) -> None:
    records = Records(settings)
    old, new = f"old-{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"
    records.alert(old, timestamp=now_ms() - 2 * HOUR_MS)
    records.alert(new)
    records.flush()
    views = _views()
    feed = feeds(views, lookback_s=3600)
    poll(lambda: feed.caught_up.is_set() and views.alerts.query(resource=new), "the new alert")
    assert views.alerts.query(resource=old) == []


def test_views_at_capacity_forget_the_least_recent(
        settings: Any, feeds: Callable[..., Feed], poll: Any) -> None:
    records = Records(settings)
    source = f"cap-{uuid.uuid4().hex[:6]}"
    for n in range(6):
        records.alert(source, subject=f"m{n}", ts=now_ms() + n)
        records.prediction(source, f"m{n}", now_ms(), 1.0)
    records.flush()
    views = _views(max_alerts=3, max_series=2)
    feed = feeds(views)
    # other tests' records share the topics: which are held is the unit tests' concern
    poll(lambda: feed.caught_up.is_set() and views.alerts.evicted >= 3
         and views.series.evicted >= 4, "the views forget beyond their capacity")
    assert len(views.alerts) == 3 and len(views.series) == 2


class Forwarder:
    """A TCP forwarder to ``target`` on a port picked now and listened on from
    :meth:`start`: the schema registry, away and then back."""

    def __init__(self, target: tuple[str, int], port: int) -> None:
        self.target, self.port = target, port
        self._server: socket.socket | None = None

    def start(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        with contextlib.suppress(OSError):  # closed
            while True:
                client, _ = server.accept()
                upstream = socket.create_connection(self.target)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def test_a_registry_away_loses_nothing_the_feed_reads_back_once_it_returns(
        settings: Any, pick_port: Callable[[], int], poll: Any) -> None:
    records = Records(settings)
    source = f"reg-{uuid.uuid4().hex[:6]}"
    records.alert(source)
    records.flush()
    registry = urlsplit(settings.registry.url)
    forwarder = Forwarder((registry.hostname or "127.0.0.1", registry.port or 80), pick_port())
    away = settings.model_copy(update={"registry": settings.registry.model_copy(
        update={"url": f"http://127.0.0.1:{forwarder.port}"})})
    views = _views()
    feed = Feed(away, views, Hub(10)).start()
    try:
        poll(lambda: feed.restarts >= 1, "the feed notices the registry is away")
        assert feed.undecodable == 0 and views.alerts.query(resource=source) == []
        forwarder.start()
        poll(lambda: views.alerts.query(resource=source), "the alert is read once it is back",
             timeout=90)
        assert feed.undecodable == 0
    finally:
        feed.stop()
        forwarder.close()
