"""A generated estate for the CMDB bench: layered like a real one, seeded.

Load balancers depend on web servers, web servers on API services, those on core
services, core services on databases, caches and queues; everything but the hosts
runs on a host.  Targets are drawn with a skewed (Zipf-like) weight, so a few
databases carry much of the estate (fan-in; hosts less so) and a host's blast radius
reaches five levels up: host ← db ← service ← api ← web ← lb.

After the estate is built, some of it changes (:class:`Estate` ``churn``): assets
updated and retired, edges removed, all later than every creation, so "as it was
at :attr:`Estate.built_at`" and "now" are different graphs.

>>> estate = Estate.generate(assets=200, edges=600, seed=3, prefix="t-")
>>> len(estate.assets), len(estate.edges), estate.depth_reached >= 5
(200, 600, True)
>>> estate == Estate.generate(assets=200, edges=600, seed=3, prefix="t-")
True
>>> events = estate.events()
>>> [e["ts"] for e in events] == sorted(e["ts"] for e in events)
True
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["LAYERS", "Estate"]

#: Bottom-up: (layer, asset_type, share of the assets, instance type, hourly cost).
LAYERS = (
    ("host", "host", 0.20, "m5.2xlarge", 0.384),
    ("db", "db", 0.06, "r5.xlarge", 0.252),
    ("cache", "cache", 0.04, "cache.r6g.large", 0.206),
    ("queue", "queue", 0.04, "m5.large", 0.096),
    ("svc", "app", 0.20, "m5.large", 0.096),
    ("api", "app", 0.20, "m5.large", 0.096),
    ("web", "web", 0.20, "t3.medium", 0.0416),
    ("lb", "lb", 0.06, "elb", 0.0225),
)

#: (dependant layer, dependency layers, relation, share of the non-host edges).
_DEPENDENCIES = (
    ("lb", ("web",), "DEPENDS_ON", 0.11),
    ("web", ("api",), "DEPENDS_ON", 0.27),
    ("api", ("svc",), "DEPENDS_ON", 0.27),
    ("svc", ("db", "queue"), "DEPENDS_ON", 0.25),
    ("svc", ("cache",), "CONNECTS_TO", 0.10),
)

#: Hosts are shared more evenly than databases: a few big ones, most with a handful.
_HOST_SKEW = 0.3

#: Milliseconds between two events of the estate's history.
_STEP_MS = 10


@dataclass(frozen=True)
class Edge:
    source: str
    relation: str
    target: str


@dataclass(frozen=True)
class Estate:
    """Assets per layer, edges, and the changes after it was built."""

    prefix: str
    layers: dict[str, list[str]]
    edges: list[Edge]
    #: Assets updated, assets retired, edges removed after :attr:`built_at`.
    updated: list[str]
    retired: list[str]
    removed: list[Edge]
    start_ms: int

    @classmethod
    def generate(cls, assets: int = 10_000, edges: int = 30_000, seed: int = 7,
                 prefix: str = "", churn: float = 0.03, start_ms: int = 1_700_000_000_000
                 ) -> Estate:
        """An estate of exactly ``assets`` assets and ``edges`` edges; ``churn`` of them
        change afterwards."""
        rng = random.Random(seed)
        layers = _layers(assets, prefix)
        runs_on = [Edge(a, "RUNS_ON", _skewed(rng, layers["host"], _HOST_SKEW))
                   for name, ids in layers.items() if name != "host" for a in ids]
        if edges < len(runs_on):
            raise ValueError(f"{edges} edges cannot run {len(runs_on)} assets on hosts")
        out = runs_on + _dependencies(rng, layers, edges - len(runs_on))
        everything = [a for ids in layers.values() for a in ids]
        n = int(len(everything) * churn)
        return cls(prefix, layers, out, rng.sample(everything, n), rng.sample(everything, n),
                   rng.sample(out, int(len(out) * churn)), start_ms)

    @property
    def assets(self) -> list[str]:
        return [a for ids in self.layers.values() for a in ids]

    @property
    def built_at(self) -> int:
        """Event time after every creation, before any churn."""
        return self.start_ms + (len(self.assets) + len(self.edges)) * _STEP_MS

    @property
    def depth_reached(self) -> int:
        """Longest chain of layers the impact edges connect (5 for the full estate)."""
        impact = {(self._layer(e.source), self._layer(e.target)) for e in self.edges
                  if e.relation != "CONNECTS_TO"}
        depth = {name: 0 for name in self.layers}
        for _ in self.layers:  # the layer graph is acyclic and small: relax until stable
            for source, target in impact:
                depth[source] = max(depth[source], depth[target] + 1)
        return max(depth.values())

    def _layer(self, asset: str) -> str:
        return asset[len(self.prefix):].split("-", 1)[0]

    def events(self) -> list[dict[str, Any]]:
        """The estate as ``infrastructure.events`` values, oldest first: each layer's
        assets bottom-up with their edges, then the churn."""
        ids = (f"{self.prefix}e{i:07d}" for i in itertools.count())
        ts = itertools.count(self.start_ms, _STEP_MS)
        out_edges: dict[str, list[Edge]] = {}
        for edge in self.edges:
            out_edges.setdefault(edge.source, []).append(edge)
        events = []
        for asset in self.assets:
            events.append(self._asset(next(ids), next(ts), asset, "created"))
            events += [_dependency(next(ids), next(ts), e, "added")
                       for e in out_edges.get(asset, [])]
        events += [self._asset(next(ids), next(ts), a, "updated") for a in self.updated]
        events += [self._asset(next(ids), next(ts), a, "retired") for a in self.retired]
        events += [_dependency(next(ids), next(ts), e, "removed") for e in self.removed]
        return events

    def _asset(self, event_id: str, ts: int, asset: str, action: str) -> dict[str, Any]:
        layer = self._layer(asset)
        _, asset_type, _, instance_type, cost = next(x for x in LAYERS if x[0] == layer)
        number = int(asset.rsplit("-", 1)[1])
        resized = action != "created"  # an update moves the asset to a bigger size
        return {"event_id": event_id, "ts": ts, "type": "asset", "resource_id": asset,
                "attributes": {
                    "action": action, "asset_type": asset_type, "name": asset,
                    "provider": "aws", "region": ("us-east-1", "eu-west-1")[number % 2],
                    "team": f"team-{number % 12:02d}", "env": "prod",
                    "instance_type": instance_type + ("-xl" if resized else ""),
                    "hourly_cost": cost * (2 if resized else 1)}}


def _dependency(event_id: str, ts: int, edge: Edge, action: str) -> dict[str, Any]:
    return {"event_id": event_id, "ts": ts, "type": "dependency", "resource_id": edge.source,
            "attributes": {"target_id": edge.target, "relation": edge.relation,
                           "action": action}}


def _layers(assets: int, prefix: str) -> dict[str, list[str]]:
    counts = [max(1, round(assets * share)) for _, _, share, _, _ in LAYERS]
    counts[0] += assets - sum(counts)  # rounding: hosts take the difference
    return {name: [f"{prefix}{name}-{i:05d}" for i in range(n)]
            for (name, *_), n in zip(LAYERS, counts, strict=True)}


def _skewed(rng: random.Random, ids: list[str], skew: float = 0.8) -> str:
    """One of ``ids``, the first ones more often (weight ``1/(rank+1)**skew``)."""
    cumulative = _cumulative(len(ids), skew)
    return ids[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


_CUMULATIVE: dict[tuple[int, float], list[float]] = {}


def _cumulative(n: int, skew: float) -> list[float]:
    if (n, skew) not in _CUMULATIVE:
        _CUMULATIVE[n, skew] = list(itertools.accumulate(1 / (r + 1) ** skew for r in range(n)))
    return _CUMULATIVE[n, skew]


def _dependencies(rng: random.Random, layers: dict[str, list[str]], budget: int) -> list[Edge]:
    """``budget`` distinct dependency edges between layers, split as
    :data:`_DEPENDENCIES` says; every dependant gets one before any gets a second."""
    out: list[Edge] = []
    plans = [(src, dst, rel, round(budget * share)) for src, dst, rel, share in _DEPENDENCIES]
    src, dst, rel, n = plans[-1]
    plans[-1] = (src, dst, rel, n + budget - sum(p[3] for p in plans))
    for source_layer, target_layers, relation, n in plans:
        sources = layers[source_layer]
        targets = [t for layer in target_layers for t in layers[layer]]
        if n > len(sources) * len(targets):
            raise ValueError(f"{n} {source_layer} edges do not fit between the layers")
        seen: set[tuple[str, str]] = set()
        for i in itertools.count():
            if len(seen) == n:
                break
            pair = (sources[i % len(sources)], _skewed(rng, targets))
            if pair not in seen:
                seen.add(pair)
                out.append(Edge(pair[0], relation, pair[1]))
    return out
