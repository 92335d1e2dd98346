"""In-process latency of zero-trust decisions with a large policy set.

``measure_decision_latency()`` loads the default policies plus synthetic ones
(literal, ``*``, partial and ``**`` globs, 5 % forbid), decides a seeded mix
of requests (most covered by some policy, some not) and returns latency
percentiles in milliseconds.  Run ``python -m dharma.bench.trust_latency``.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from dharma.agents.trust import (
    AccessEvent,
    PolicySet,
    TrustEngine,
    UserBehaviour,
    default_policy_dir,
    load_policy_set,
    parse_access_event,
)

__all__ = ["measure_decision_latency", "synthetic_policies"]

_ACTIONS = ["read", "write", "delete", "deploy"]
_ROLES = ["admin", "dba", "developer", "sre", "analyst", "auditor"]
_LEVELS = ["LOW", "MEDIUM", "HIGH", "FULL"]


def _glob(rng: random.Random, i: int) -> str:
    service, env = f"svc{i % 97}", rng.choice(["production", "staging", "dev"])
    shape = i % 4
    if shape == 0:
        return f"{service}/{env}/db_{i}"
    if shape == 1:
        return f"{service}/{env}/*"
    if shape == 2:
        return f"{service}/{env}/table_{i % 13}*"
    return f"{service}/{env}/**"


def synthetic_policies(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` seeded policy documents over ``svcN/env/...`` resources."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        pol: dict[str, Any] = {
            "id": f"syn_{i:05d}",
            "name": f"synthetic policy {i}",
            "resource": _glob(rng, i),
            "actions": rng.sample(_ACTIONS, k=rng.randint(1, 3)),
        }
        if i % 20 == 19:
            pol.update(effect="forbid", when={"trust_below": rng.choice(_LEVELS)})
        else:
            pol.update(
                roles_any=rng.sample(_ROLES, k=2),
                min_trust_level=rng.choice(_LEVELS),
                conditions={"mfa_required": rng.random() < 0.5, "min_device_compliance": 70},
            )
        out.append(pol)
    return out


def _request(rng: random.Random, i: int, base: datetime) -> AccessEvent:
    svc, env = f"svc{rng.randrange(110)}", rng.choice(["production", "staging", "dev"])
    resource = f"{svc}/{env}/{rng.choice(['db_', 'table_', 'x'])}{rng.randrange(1000)}"
    ts = base + timedelta(seconds=i)
    raw = {
        "event_id": f"bench-{i}",
        "ts": ts,
        "user_id": f"user_{rng.randrange(500)}",
        "roles": rng.sample(_ROLES, k=rng.randint(0, 3)),
        "resource": resource,
        "action": rng.choice(_ACTIONS),
        "device": {
            "device_id": f"dev_{rng.randrange(900)}",
            "os": "Ubuntu 22.04",
            "encrypted": rng.random() < 0.9,
            "firewall": rng.random() < 0.9,
            "antivirus": rng.random() < 0.8,
            "compliance_score": float(rng.randint(40, 100)),
            "patch_level": rng.choice(["latest", "recent", "outdated", "unknown"]),
        },
        "mfa_enabled": rng.random() < 0.7,
        "last_auth_ts": ts - timedelta(seconds=rng.randint(0, 3600)),
        "source_ip": rng.choice(["10.0.1.50", "192.168.3.4", "203.0.113.9"]),
    }
    return parse_access_event(raw)


def _pct(sorted_ns: list[int], q: float) -> float:
    idx = min(len(sorted_ns) - 1, int(q * len(sorted_ns)))
    return sorted_ns[idx] / 1e6


def _time_parsing(events: list[AccessEvent]) -> list[int]:
    out = []
    for event in events:
        raw = event.to_record()
        t0 = time.perf_counter_ns()
        parse_access_event(raw)
        out.append(time.perf_counter_ns() - t0)
    return sorted(out)


def _time_decisions(
    engine: TrustEngine, events: list[AccessEvent], behaviour: UserBehaviour
) -> tuple[list[int], dict[str, int]]:
    for event in events[:500]:  # warm-up
        engine.decide(event, behaviour)
    times: list[int] = []
    outcomes: dict[str, int] = {}
    for event in events:
        t0 = time.perf_counter_ns()
        decision = engine.decide(event, behaviour)
        times.append(time.perf_counter_ns() - t0)
        outcomes[decision.decision.value] = outcomes.get(decision.decision.value, 0) + 1
    return sorted(times), outcomes


def _overlap_p99(n_policies: int, n_requests: int) -> float:
    """p99 when every policy covers the request and none permits it (worst case)."""
    docs = [
        {
            "policies": [
                {"id": f"o{i}", "name": "o", "resource": "database/**", "actions": ["read"],
                 "roles_any": [f"role{i}"], "min_trust_level": "HIGH"}
                for i in range(n_policies)
            ]
        }
    ]  # fmt: skip
    engine = TrustEngine(PolicySet.from_documents(docs))
    event = _request(random.Random(1), 0, datetime(2025, 12, 8, 9, 0, tzinfo=UTC))
    event = event.model_copy(update={"resource": "database/production/x", "action": "read"})
    times, _ = _time_decisions(engine, [event] * n_requests, UserBehaviour())
    return _pct(times, 0.99)


def measure_decision_latency(n_policies: int = 1000, n_requests: int = 20000) -> dict[str, Any]:
    """Decide ``n_requests`` requests with ``n_policies`` policies loaded.

    Returns
    -------
    dict
        ``p50_ms``, ``p99_ms``, ``p999_ms``, ``max_ms``, ``mean_ms`` of
        :meth:`TrustEngine.decide` on validated events, ``parse_p99_ms`` for
        validation alone, ``all_overlapping_p99_ms`` for the worst case
        (every policy covers the request, none permits it), the outcome mix,
        and the sizes used.
    """
    rng = random.Random(42)
    defaults = load_policy_set(default_policy_dir())
    extra = synthetic_policies(max(0, n_policies - len(defaults)))
    docs = [{"policies": [cp.policy.model_dump() for cp in defaults.policies] + extra}]
    engine = TrustEngine(PolicySet.from_documents(docs))
    base = datetime(2025, 12, 8, 9, 0, tzinfo=UTC)
    behaviour = UserBehaviour(score=70, known_devices=("dev_1",))
    events = [_request(rng, i, base) for i in range(n_requests)]
    parse_ns = _time_parsing(events[:2000])
    times, outcomes = _time_decisions(engine, events, behaviour)
    return {
        "n_policies": len(engine.policies),
        "n_requests": n_requests,
        "p50_ms": round(_pct(times, 0.50), 4),
        "p99_ms": round(_pct(times, 0.99), 4),
        "p999_ms": round(_pct(times, 0.999), 4),
        "max_ms": round(times[-1] / 1e6, 4),
        "mean_ms": round(sum(times) / len(times) / 1e6, 4),
        "parse_p99_ms": round(_pct(parse_ns, 0.99), 4),
        "all_overlapping_p99_ms": round(_overlap_p99(n_policies, min(n_requests, 2000)), 4),
        "outcomes": outcomes,
    }


if __name__ == "__main__":
    print(json.dumps(measure_decision_latency(), indent=2))
