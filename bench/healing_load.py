"""What ``dharma bench healing`` feeds the healing worker: an estate in the CMDB, an
hour of metric history for the resources that will alert, and the alerts.

The estate is the CMDB bench's (:mod:`dharma.bench.cmdb_estate`, no churn), loaded
straight into the graph (:func:`~dharma.bench.cmdb_queries.load_estate`).  Its
asset type and team make the circuit breaker's groups: 12 teams, so with 10,000
assets the 2,000 web servers form groups of about 166 (at least 5 even in the
test's tiny estate).  Alerts go to web servers taken in order, so consecutive ones
land in different teams and no group comes near the breaker's 40 %.

Each alerting web server gets a memory leak's history in ``metrics_raw`` (what the
ingest topology stores), so incidents are classified as the seed's example is:
``memory_leak``, then the restart playbook.

>>> estate = Estate.generate(assets=400, edges=1_200, churn=0.0, prefix="t-")
>>> plan = AlertPlan.of(estate, latency=10)
>>> len(plan.latency), len({team_of(w) for w in plan.latency})
(10, 10)
>>> from collections import Counter
>>> mix = plan.mix(40, start_ms=1_000)
>>> sorted(Counter(kind for kind, _ in mix).items())
[('new', 12), ('repeat', 16), ('resolved', 4), ('symptom', 8)]
>>> len({r["alert_id"] for _, r in mix})
40
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dharma.bench.cmdb_estate import Estate
from dharma.sinks.postgres import PostgresMetricsSink
from dharma.streams.alerting import alert_record
from dharma.streams.records import MetricSample

__all__ = ["METRIC", "AlertPlan", "alert", "store_leaks", "team_of"]

METRIC = "memory_utilization"

#: Kinds of the throughput mix, in the order they repeat: 30 % new incidents, 40 %
#: repeats of open incidents' alerts, 20 % symptoms (a load balancer that depends on
#: an alerting web server), 10 % resolved notifications (of symptoms).
_PATTERN = ("new", "repeat", "symptom", "repeat", "new", "repeat", "resolved", "new",
            "repeat", "symptom")

#: History of each alerting resource: a sample every 30 s over the last hour.
_STEP_MS, _STEPS = 30_000, 120


def team_of(asset: str) -> int:
    """The team number the estate gives ``asset`` (its number modulo 12)."""
    return int(asset.rsplit("-", 1)[1]) % 12


def alert(source: str, ts: int, status: str = "firing", value: float = 92.0,
          episode_start: int | None = None) -> dict[str, Any]:
    """A memory threshold alert on ``source``, as Alertmanager bridged onto the bus."""
    return alert_record(
        kind="threshold", component="prometheus", source=source, subject=METRIC,
        status=status, severity="critical", summary=f"High Memory Usage on {source}",  # type: ignore[arg-type]  # status is firing/resolved
        ts=ts, episode_start=ts if episode_start is None else episode_start,
        labels={"metric": METRIC, "threshold": "80", "value": f"{value:g}"})


@dataclass
class AlertPlan:
    """Which resources alert: ``latency`` web servers for the trickle, ``fresh`` ones
    for the throughput's new incidents, and for each of those the load balancers
    that depend on it (``symptoms_of``)."""

    latency: list[str]
    fresh: list[str]
    symptoms_of: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, estate: Estate, latency: int) -> AlertPlan:
        webs = estate.layers["web"]
        if latency >= len(webs):
            raise ValueError(f"{latency} latency alerts need more than {len(webs)} web servers")
        symptoms: dict[str, list[str]] = {}
        for edge in estate.edges:
            if edge.relation == "DEPENDS_ON" and edge.target in webs:
                symptoms.setdefault(edge.target, []).append(edge.source)
        return cls(webs[:latency], webs[latency:], symptoms)

    def mix(self, n: int, start_ms: int) -> list[tuple[str, dict[str, Any]]]:
        """``n`` alerts of the throughput mix (:data:`_PATTERN`), dated 1 ms apart from
        ``start_ms``; a kind with nothing to act on yet falls back to a new incident."""
        fresh, ts = iter(self.fresh), itertools.count(start_ms)
        firing: list[tuple[str, int]] = []  # (source, episode start), oldest first
        symptoms: list[tuple[str, int]] = []
        used: set[str] = set()
        out: list[tuple[str, dict[str, Any]]] = []
        for i, kind in zip(range(n), itertools.cycle(_PATTERN), strict=False):
            at = next(ts)
            if kind == "repeat" and firing:
                source, start = firing[i % len(firing)]
                out.append((kind, alert(source, at, value=93.0, episode_start=start)))
            elif kind == "resolved" and symptoms:
                source, start = symptoms.pop(0)
                firing.remove((source, start))
                out.append((kind, alert(source, at, "resolved", 60.0, start)))
            elif kind == "symptom" and (lb := self._symptom(firing, used)):
                used.add(lb)
                firing.append((lb, at))
                symptoms.append((lb, at))
                out.append((kind, alert(lb, at)))
            else:
                source = next(fresh)
                firing.append((source, at))
                out.append(("new", alert(source, at)))
        return out

    def _symptom(self, firing: list[tuple[str, int]], used: set[str]) -> str | None:
        """A load balancer not alerting yet that depends on an alerting web server."""
        for source, _ in reversed(firing):
            for lb in self.symptoms_of.get(source, ()):
                if lb not in used:
                    return lb
        return None


def leak(source: str, end_ms: int) -> Iterator[MetricSample]:
    """Memory climbing steadily from 45 % to 92 % over the hour before ``end_ms``."""
    for i in range(_STEPS + 1):
        yield MetricSample(source=source, metric=METRIC, unit="percent",
                           value=round(45.0 + 47.0 * i / _STEPS, 2),
                           ts=end_ms - (_STEPS - i) * _STEP_MS)


async def store_leaks(dsn: str, sources: Iterable[str], end_ms: int) -> int:
    """Store a leak's history for each of ``sources`` in ``metrics_raw``; samples stored."""
    sink = PostgresMetricsSink(dsn)
    await sink.setup()
    stored = 0
    try:
        samples = (s for source in sources for s in leak(source, end_ms))
        while chunk := list(itertools.islice(samples, 5_000)):
            stored += await sink.write(chunk)
    finally:
        await sink.close()
    return stored
