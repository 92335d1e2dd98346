"""The simulated estate: resources, owners, costs and dependencies."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from dharma.synthetic.model import INFRA_TOPIC, Emission, new_id

#: asset_type -> (instance type, hourly list price in USD)
INSTANCE_TYPES: dict[str, tuple[str, float]] = {
    "web": ("t3.medium", 0.0416),
    "app": ("m5.large", 0.096),
    "db": ("r5.xlarge", 0.252),
    "cache": ("cache.r6g.large", 0.206),
    "queue": ("m5.large", 0.096),
}

DEFAULT_TEAMS: dict[str, str] = {
    "web": "frontend",
    "app": "payments",
    "db": "data-platform",
    "cache": "data-platform",
    "queue": "platform",
}


@dataclass(frozen=True)
class EstateConfig:
    """Size and placement of the estate.

    Parameters
    ----------
    web, app, cache, queue
        Number of resources of each kind (one primary database is always present).
    env, provider, region
        Placement written on every asset.
    teams
        Owning team per asset type.
    """

    web: int = 3
    app: int = 2
    cache: int = 1
    queue: int = 1
    env: str = "prod"
    provider: str = "aws"
    region: str = "us-east-1"
    teams: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TEAMS))

    def __post_init__(self) -> None:
        if min(self.web, self.app) < 1 or min(self.cache, self.queue) < 0:
            raise ValueError("need at least one web and one app server")


@dataclass(frozen=True)
class Resource:
    """One resource of the estate and the resources it depends on."""

    resource_id: str
    asset_type: str
    team: str
    env: str
    provider: str
    region: str
    instance_type: str
    hourly_cost: float
    depends_on: tuple[tuple[str, str], ...] = ()  # (target_id, relation)

    def labels(self) -> dict[str, str]:
        """Metric labels for this resource."""
        return {
            "env": self.env,
            "team": self.team,
            "asset_type": self.asset_type,
            "region": self.region,
            "provider": self.provider,
        }


def _ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:02d}" for i in range(1, count + 1)]


def build_estate(config: EstateConfig) -> list[Resource]:
    """Resources in dependency order (targets before dependants): db, cache, queue, app, web."""
    db = ["db-primary-01"]
    caches, queues = _ids("cache", config.cache), _ids("queue", config.queue)
    apps, webs = _ids("app-server", config.app), _ids("web-server", config.web)
    app_deps = tuple(
        [(d, "DEPENDS_ON") for d in db]
        + [(c, "CONNECTS_TO") for c in caches]
        + [(q, "CONNECTS_TO") for q in queues]
    )
    plan: list[tuple[str, str, tuple[tuple[str, str], ...]]] = [
        *((r, "db", ()) for r in db),
        *((r, "cache", ()) for r in caches),
        *((r, "queue", ()) for r in queues),
        *((r, "app", app_deps) for r in apps),
        *((r, "web", tuple((a, "DEPENDS_ON") for a in apps)) for r in webs),
    ]
    out = []
    for rid, kind, deps in plan:
        itype, cost = INSTANCE_TYPES[kind]
        out.append(
            Resource(
                rid,
                kind,
                config.teams.get(kind, "platform"),
                config.env,
                config.provider,
                config.region,
                itype,
                cost,
                deps,
            )
        )
    return out


def estate_events(resources: list[Resource], ts: int, rng: random.Random) -> Iterator[Emission]:
    """``asset`` (created) events for every resource, then one ``dependency`` event per edge."""
    for r in resources:
        attrs = {
            "action": "created",
            "asset_type": r.asset_type,
            "name": r.resource_id,
            "provider": r.provider,
            "region": r.region,
            "team": r.team,
            "env": r.env,
            "instance_type": r.instance_type,
            "hourly_cost": r.hourly_cost,
        }
        yield infra_event(rng, ts, "asset", r.resource_id, attrs)
    for r in resources:
        for target, relation in r.depends_on:
            attrs = {"target_id": target, "relation": relation, "action": "added"}
            yield infra_event(rng, ts, "dependency", r.resource_id, attrs)


def infra_event(
    rng: random.Random, ts: int, kind: str, resource_id: str, attributes: dict[str, object]
) -> Emission:
    """An ``infrastructure.events`` emission keyed by ``resource_id``."""
    value = {
        "event_id": new_id(rng),
        "ts": ts,
        "type": kind,
        "resource_id": resource_id,
        "attributes": attributes,
    }
    return Emission(INFRA_TOPIC, resource_id, value)
