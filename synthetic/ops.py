"""Operational events: deployments and health checks."""

from __future__ import annotations

import random

from dharma.synthetic.estate import Resource, infra_event
from dharma.synthetic.incidents import ActiveIncident
from dharma.synthetic.model import Emission, new_id

CHECKS: dict[str, str] = {
    "web": "http_get_/health",
    "app": "http_get_/ready",
    "db": "tcp_connect_5432",
    "cache": "redis_ping",
    "queue": "broker_status",
}
INITIATORS = ("ci-pipeline", "ci-pipeline", "ci-pipeline", "alice.ops", "bob.dev")
OUTCOMES = (("succeeded", 0.85), ("failed", 0.08), ("rolled_back", 0.07))


class Deployments:
    """Random deployments to web and app servers: started, then an outcome."""

    def __init__(self, resources: list[Resource], rng: random.Random, per_tick: float) -> None:
        self.targets = [r.resource_id for r in resources if r.asset_type in ("web", "app")]
        self.rng = rng
        self.per_tick = per_tick
        self.versions = {rid: (1, rng.randint(0, 9), rng.randint(0, 20)) for rid in self.targets}
        self.pending: dict[int, list[tuple[str, dict[str, object]]]] = {}

    def step(self, tick: int) -> list[tuple[str, dict[str, object]]]:
        """(resource_id, attributes) of deployment events due at ``tick``."""
        if self.targets and self.rng.random() < self.per_tick:
            self._start(tick)
        return self.pending.pop(tick, [])

    def _start(self, tick: int) -> None:
        rid = self.rng.choice(self.targets)
        old = self.versions[rid]
        new = (old[0], old[1] + 1, 0) if self.rng.random() < 0.3 else (old[0], old[1], old[2] + 1)
        outcome = self.rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
        if outcome == "succeeded":
            self.versions[rid] = new
        base = {
            "deployment_id": new_id(self.rng, "dep-"),
            "version": ".".join(map(str, new)),
            "previous_version": ".".join(map(str, old)),
            "initiator": self.rng.choice(INITIATORS),
        }
        self.pending.setdefault(tick, []).append((rid, {**base, "status": "started"}))
        done = tick + self.rng.randint(2, 6)
        self.pending.setdefault(done, []).append((rid, {**base, "status": outcome}))


def health_check(
    rng: random.Random, ts: int, resource: Resource, incident: ActiveIncident | None
) -> Emission:
    """One health check: passing, or warning/failing while an incident hits the resource."""
    latency = 12.0 * rng.lognormvariate(0.0, 0.25)
    status, message = "passing", "ok"
    if incident is not None:
        critical = incident.label.severity == "critical"
        status = "failing" if critical else "warning"
        latency *= 4 if critical else 2
        message = f"{incident.label.category} suspected"
    attrs = {
        "check": CHECKS[resource.asset_type],
        "status": status,
        "latency_ms": round(latency, 2),
        "message": message,
    }
    return infra_event(rng, ts, "health_check", resource.resource_id, attrs)


def deployment_events(
    rng: random.Random, ts: int, items: list[tuple[str, dict[str, object]]]
) -> list[Emission]:
    """Deployment emissions from (resource_id, attributes) pairs."""
    return [infra_event(rng, ts, "deployment", rid, attrs) for rid, attrs in items]
