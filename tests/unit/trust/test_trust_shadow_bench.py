"""Shadow comparison of two policy sets, and a small latency benchmark run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dharma.agents.trust import PolicySet, TrustEngine, UserBehaviour, shadow_compare
from dharma.bench.trust_latency import measure_decision_latency

Seed = Callable[..., dict[str, Any]]


def test_shadow_compare(engine: TrustEngine, seed: Seed) -> None:
    docs = [cp.policy.model_dump() for cp in engine.policies.policies]
    for doc in docs:
        if doc["id"] == "pol_001":
            doc["conditions"]["mfa_required"] = False
    candidate = TrustEngine(PolicySet.from_documents([{"policies": docs}]), engine.config)
    events = [
        seed(event_id="a"),
        seed(event_id="b", mfa_enabled=False),
        seed(event_id="c", roles=["developer"]),
        {"event_id": "junk"},
    ]
    report = shadow_compare(events, engine, candidate, lambda _: UserBehaviour(score=85))
    assert report.total == 4
    assert report.agree == 3
    assert report.transitions == {"CHALLENGE->ALLOW": 1}
    assert (report.loosened, report.tightened) == (1, 0)
    assert report.samples[0].event_id == "b"
    assert report.current_version != report.candidate_version
    assert 0.74 < report.agreement < 0.76


def test_latency_bench_smoke() -> None:
    result = measure_decision_latency(n_policies=200, n_requests=1000)
    assert result["n_policies"] == 200
    assert result["p99_ms"] < 50  # the real target (2 ms at 1,000 policies) is the bench's job
    assert sum(result["outcomes"].values()) == 1000
