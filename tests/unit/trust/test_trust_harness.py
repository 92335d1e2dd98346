"""The trust agent's batch step driven in-process (``tests/harness.py``): its two
changelog-backed tables, no broker; what one batch teaches is read back by the next."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import TrustHarness

from dharma.agents.trust import TrustEngine, Verdict
from dharma.agents.trust.state import ALERT_TABLE, BEHAVIOUR_TABLE

Seed = Callable[..., dict[str, Any]]


def test_a_denial_burst_across_batches_alerts_once(engine: TrustEngine, seed: Seed) -> None:
    harness = TrustHarness(engine)
    denied = [seed(event_id=f"e{i}", ts=seed()["ts"] + i * 1000, resource="hr/payroll/secret",
                   roles=["intern"]) for i in range(9)]
    alerts, verdicts = [], []
    for start in range(0, 9, 3):  # three batches: the burst spans them
        out = harness.batch(denied[start:start + 3])
        verdicts += [decision.decision for _, _, decision in out.decided]
        alerts += [a["kind"] for a in out.alerts]
    assert set(verdicts) == {Verdict.DENY}
    assert alerts == ["access_denied_burst"]
    assert len(harness.emitter.to(f"{BEHAVIOUR_TABLE}-changelog")) == 3  # once a batch
    assert len(harness.emitter.to(f"{ALERT_TABLE}-changelog")) == 1  # the burst opened
    assert len(harness.tables.behaviour("admin_user_001").denials) == 9
