"""The recent points of every scored series, in compact ring buffers.

A series is ``source|metric`` (the anomaly worker's key).  Each keeps its last
``capacity`` points as columns of typed arrays (timestamps as int64, values and
expected values as float64, scores and the expected band's half-width as float32,
anomaly flags as bytes: about 34 bytes a point, no object per point), so 10,000
series of 240 points hold about 85 MB.  Beyond ``max_series`` the least recently
updated series is forgotten.

>>> view = SeriesView(capacity=3, max_series=2, warmup_needed=150)
>>> for ts in (1, 2, 3, 4):
...     view.add_point(Point("web-01", "cpu", ts, float(ts), 0.1, None, ts == 4, False, 1.0))
>>> [p["ts"] for p in view.detail("web-01|cpu")["points"]]
[2, 3, 4]
>>> view.summaries()[0]["anomalous"], view.summaries()[0]["last_value"]
(True, 4.0)
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, NamedTuple

__all__ = ["Point", "SeriesRing", "SeriesView", "point_of"]


class Point(NamedTuple):
    """One scored sample, as an ``ml.predictions`` anomaly record carries it."""

    source: str
    metric: str
    ts: int
    value: float
    score: float
    expected: float | None
    anomaly: bool
    warming_up: bool
    confidence: float
    #: half the width of the expected band around ``expected`` (None: no band)
    spread: float | None = None


def point_of(record: dict[str, Any]) -> Point:
    """The point of an ``AnomalyPrediction`` record (decoded by the contract)."""
    lower, upper = record.get("lower"), record.get("upper")
    spread = None if lower is None or upper is None else (upper - lower) / 2
    return Point(record["source"], record["metric"], int(record["ts"]), float(record["value"]),
                 float(record["anomaly_score"]), record.get("expected"),
                 bool(record["is_anomaly"]), bool(record.get("warming_up", False)),
                 float(record.get("confidence", 1.0)), spread)


def _finite(x: float) -> float | None:
    """``x``, or None when it is NaN or infinite (JSON has no such numbers)."""
    return x if math.isfinite(x) else None


class SeriesRing:
    """The last ``capacity`` points of one series; the oldest is overwritten first.

    >>> ring = SeriesRing(2)
    >>> for ts in (1, 2, 3):
    ...     ring.append(ts, 1.0, 0.9, None, ts > 2)
    >>> [p["ts"] for p in ring.points()], ring.anomalies
    ([2, 3], 1)
    """

    __slots__ = ("_anomaly", "_expected", "_head", "_latest", "_score", "_spread", "_ts",
                 "_value", "anomalies", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ts = array("q")
        self._value = array("d")
        self._score = array("f")
        self._expected = array("d")  # NaN: the detector had no baseline yet
        self._spread = array("f")  # NaN: no band
        self._anomaly = bytearray()
        self._head = 0  # once full, where the oldest point is (the next to overwrite)
        self._latest = -(2**63)  # the newest time held: a newer point needs no search
        #: Anomalies among the points held.
        self.anomalies = 0

    def __len__(self) -> int:
        return len(self._ts)

    def holds(self, ts: int) -> bool:
        """Whether a point at ``ts`` is held (a record read twice is one point)."""
        return ts <= self._latest and ts in self._ts

    def append(self, ts: int, value: float, score: float, expected: float | None,
               anomaly: bool, spread: float | None = None) -> None:
        """Add the newest point, overwriting the oldest when full."""
        centre = math.nan if expected is None else expected
        half = math.nan if spread is None else spread
        self._latest = max(self._latest, ts)
        if len(self._ts) < self.capacity:
            self._ts.append(ts)
            self._value.append(value)
            self._score.append(score)
            self._expected.append(centre)
            self._spread.append(half)
            self._anomaly.append(anomaly)
        else:
            i = self._head
            self.anomalies -= self._anomaly[i]
            self._ts[i], self._value[i], self._score[i] = ts, value, score
            self._expected[i], self._spread[i] = centre, half
            self._anomaly[i] = anomaly
            self._head = (i + 1) % self.capacity
        self.anomalies += anomaly

    def newest(self) -> int:
        """Index of the newest point (the ring is not empty)."""
        return (self._head - 1) % len(self._ts)

    def _order(self) -> Iterator[int]:
        n = len(self._ts)
        return ((self._head + k) % n for k in range(n))

    def points(self, since: int | None = None) -> list[dict[str, Any]]:
        """Points held (from ``since``, epoch ms), oldest first by time; ``lower`` and
        ``upper``, the expected band, null where the prediction had none."""
        held = sorted((self._ts[i], i) for i in self._order()  # a late sample in its place
                      if since is None or self._ts[i] >= since)
        return [{"ts": ts, "value": _finite(self._value[i]), "score": _finite(self._score[i]),
                 "expected": _finite(self._expected[i]),
                 "lower": _finite(self._expected[i] - self._spread[i]),
                 "upper": _finite(self._expected[i] + self._spread[i]),
                 "anomaly": bool(self._anomaly[i])} for ts, i in held]

    def last(self) -> tuple[int, float | None, float | None]:
        """Time, value and score of the newest point."""
        i = self.newest()
        return self._ts[i], _finite(self._value[i]), _finite(self._score[i])


class _Series:
    """A series' names, warm-up state and ring."""

    __slots__ = ("confidence", "metric", "resource", "ring", "warm")

    def __init__(self, resource: str, metric: str, capacity: int) -> None:
        self.resource, self.metric = resource, metric
        self.ring = SeriesRing(capacity)
        self.warm, self.confidence = False, 0.0


class SeriesView:
    """Every series' recent points (see the module docstring).

    ``warmup_needed`` is the detector's warm-up length, what ``confidence`` is a share of.
    """

    def __init__(self, capacity: int, max_series: int, warmup_needed: int) -> None:
        self.capacity, self.max_series, self.warmup_needed = capacity, max_series, warmup_needed
        self._series: OrderedDict[str, _Series] = OrderedDict()
        #: Series forgotten beyond ``max_series``; records read twice and passed over.
        self.evicted = 0
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._series)

    def clear(self) -> None:
        self._series.clear()

    def add_point(self, point: Point) -> None:
        """Record one scored sample (a sample already held is passed over)."""
        key = f"{point.source}|{point.metric}"
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(point.source, point.metric, self.capacity)
            if len(self._series) > self.max_series:
                self._series.popitem(last=False)
                self.evicted += 1
        elif series.ring.holds(point.ts):
            self.duplicates += 1
            return
        self._series.move_to_end(key)
        series.ring.append(point.ts, point.value, point.score, point.expected, point.anomaly,
                           point.spread)
        series.warm = not point.warming_up
        series.confidence = point.confidence

    def _summary(self, key: str, series: _Series) -> dict[str, Any]:
        last_ts, last_value, last_score = series.ring.last()
        return {"series_id": key, "resource": series.resource, "metric": series.metric,
                "last_ts": last_ts, "last_value": last_value, "last_score": last_score,
                "anomalous": series.ring.anomalies > 0, "warm": series.warm}

    def summaries(self, q: str | None = None, anomalous: bool | None = None,
                  after: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Series in id order after ``after``: those whose id contains ``q`` (any case),
        anomalous (an anomaly among the points held) or not; at most ``limit``."""
        needle = q.casefold() if q else None
        out = []
        for key in sorted(list(self._series)):
            if (after is not None and key <= after) or (needle and needle not in key.casefold()):
                continue
            series = self._series.get(key)  # None: forgotten by the feed meanwhile
            if series is None or (anomalous is not None
                                   and (series.ring.anomalies > 0) != anomalous):
                continue
            out.append(self._summary(key, series))
            if limit is not None and len(out) >= limit:
                break
        return out

    def detail(self, key: str, since: int | None = None) -> dict[str, Any] | None:
        """A series' points and warm-up state; None when it is not held."""
        series = self._series.get(key)
        if series is None:
            return None
        seen = self.warmup_needed if series.warm else min(
            self.warmup_needed, round(series.confidence * self.warmup_needed))
        return {"series_id": key, "resource": series.resource, "metric": series.metric,
                "warmup": {"warm": series.warm, "seen": seen, "needed": self.warmup_needed},
                "points": series.ring.points(since)}
