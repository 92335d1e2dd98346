"""The API's feed: it rebuilds its views from the lookback when it (re)starts, without
counting anything twice; records older than the lookback stay out; views stay bounded."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

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
