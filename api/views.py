"""What the API's feed keeps in memory, each view bounded: alerts, dead letters, rates.

The series' points are in :mod:`dharma.api.series_view`.  Views are filled by the
feed's thread and read by requests on the event loop: each update and each read is a
few dictionary operations under the GIL, and readers copy what they return.

>>> alerts = AlertsView(max_alerts=2)
>>> alerts.add({"fingerprint": "f1", "alert_id": "a1", "status": "firing",
...             "severity": "critical", "source": "web-01", "summary": "cpu", "ts": 10})
>>> alerts.add({"fingerprint": "f1", "alert_id": "a2", "status": "resolved",
...             "severity": "critical", "source": "web-01", "summary": "cpu", "ts": 30})
>>> [(a["alert_id"], a["status"], a["first_seen"], a["last_seen"]) for a in alerts.query()]
[('a2', 'resolved', 10, 30)]
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from dharma.api.series_view import SeriesView

__all__ = ["AlertsView", "DeadLetterView", "LiveViews", "RateView"]

#: Longest dead-letter reason kept (reasons may quote the bad value).
MAX_REASON = 200
#: Distinct (topic, kind, reason) counted; further reasons are counted together.
MAX_REASONS = 1000
OTHER_REASONS = "(other reasons)"


class AlertsView:
    """The latest notification of each alert (by fingerprint), newest first.

    ``first_seen`` is the start of the alert's current episode as seen (a firing after
    a resolve starts a new one), ``last_seen`` its latest notification's time; both
    epoch ms.  Beyond ``max_alerts`` the least recently notified alert is forgotten.
    """

    def __init__(self, max_alerts: int) -> None:
        self.max_alerts = max_alerts
        self._alerts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        #: Alerts forgotten beyond ``max_alerts``.
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._alerts)

    def clear(self) -> None:
        self._alerts.clear()

    def add(self, record: dict[str, Any]) -> None:
        """Take one ``alerts.notifications`` record."""
        key, ts = record["fingerprint"], record["ts"]
        before = self._alerts.pop(key, None)
        new_episode = before is None or (before["status"] == "resolved"
                                         and record["status"] == "firing")
        first = ts if new_episode else min(before["first_seen"], ts)  # type: ignore[index]
        last = ts if before is None else max(before["last_seen"], ts)
        self._alerts[key] = {**record, "resource": record["source"], "title": record["summary"],
                             "first_seen": first, "last_seen": last}
        if len(self._alerts) > self.max_alerts:
            self._alerts.popitem(last=False)
            self.evicted += 1

    def query(self, status: str | None = None, severity: Collection[str] | None = None,
              resource: str | None = None, since: int | None = None, until: int | None = None,
              after: tuple[int, str] | None = None, limit: int | None = None
              ) -> list[dict[str, Any]]:
        """Alerts matching every filter given (``ts`` in ``[since, until]``), newest first
        (ties by fingerprint), after the ``(ts, fingerprint)`` of ``after``; at most
        ``limit``."""

        def keep(a: dict[str, Any]) -> bool:
            return ((status is None or a["status"] == status)
                    and (not severity or a["severity"] in severity)
                    and (resource is None or a["source"] == resource)
                    and (since is None or a["ts"] >= since)
                    and (until is None or a["ts"] <= until))

        rows = sorted((a for a in list(self._alerts.values()) if keep(a)),
                      key=lambda a: (-a["ts"], a["fingerprint"]))
        if after is not None:
            rows = [a for a in rows if (-a["ts"], a["fingerprint"]) > (-after[0], after[1])]
        return rows[:limit] if limit is not None else rows


class DeadLetterView:
    """Dead letters counted by the topic they came from, their kind and reason."""

    def __init__(self, max_reasons: int = MAX_REASONS) -> None:
        self.max_reasons = max_reasons
        self._counts: dict[tuple[str, str, str], int] = {}

    def clear(self) -> None:
        self._counts.clear()

    def add(self, topic: str, record: dict[str, Any]) -> None:
        """Count one dead letter of ``topic`` (the topic its dead-letter topic serves,
        not the record's own ``topic`` field, which its producer may have forged)."""
        key = (topic, str(record.get("error_kind", "")), str(record.get("reason", ""))[:MAX_REASON])
        if key not in self._counts and len(self._counts) >= self.max_reasons:
            key = (topic, key[1], OTHER_REASONS)
        self._counts[key] = self._counts.get(key, 0) + 1

    def rows(self) -> list[dict[str, Any]]:
        """``{topic, error_kind, reason, count}``, most frequent first."""
        counts = sorted(list(self._counts.items()), key=lambda kv: (-kv[1], kv[0]))
        return [{"topic": t, "error_kind": k, "reason": r, "count": n}
                for (t, k, r), n in counts]


class RateView:
    """Records per second per topic, over the last ``window_s`` seconds of arrivals.

    >>> now = [100.0]
    >>> rates = RateView(window_s=10, clock=lambda: now[0])
    >>> rates.start()
    >>> for _ in range(20):
    ...     rates.count("t")
    >>> now[0] = 105.0
    >>> rates.rows()
    [{'topic': 't', 'per_s': 4.0}]
    """

    def __init__(self, window_s: int = 60, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s, self._clock = window_s, clock
        self._seconds: dict[str, deque[list[int]]] = {}  # per topic: [second, count], oldest first
        self._started: float | None = None

    def start(self) -> None:
        """Counting starts now (records read back on start are not arrivals)."""
        self._seconds.clear()
        self._started = self._clock()

    def count(self, topic: str, n: int = 1) -> None:
        second = int(self._clock())
        buckets = self._seconds.setdefault(topic, deque())
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += n
        else:
            buckets.append([second, n])
        while buckets and buckets[0][0] <= second - self.window_s:
            buckets.popleft()

    def rows(self) -> list[dict[str, Any]]:
        """``{topic, per_s}`` over the window (or the time since counting started)."""
        if self._started is None:
            return []
        now = self._clock()
        span = max(1.0, min(float(self.window_s), now - self._started))
        out = []
        for topic, buckets in sorted(list(self._seconds.items())):
            n = sum(c for s, c in list(buckets) if s > now - self.window_s)
            out.append({"topic": topic, "per_s": round(n / span, 3)})
        return out


@dataclass
class LiveViews:
    """Every view the feed fills; :meth:`clear` before the feed reads back again."""

    alerts: AlertsView
    series: SeriesView
    dead_letters: DeadLetterView = field(default_factory=DeadLetterView)
    rates: RateView = field(default_factory=RateView)

    def clear(self) -> None:
        self.alerts.clear()
        self.series.clear()
        self.dead_letters.clear()
