"""What a playbook's verification asks the healing worker to watch: direction included."""

from __future__ import annotations

from dharma.agents.healing.logic import verify
from dharma.agents.healing.playbooks import load_playbooks
from dharma.agents.healing.state import _verification
from dharma.sinks.incidents import AlertRow


def alert(metric: str, threshold: str | None) -> AlertRow:
    labels = {"metric": metric} | ({"threshold": threshold} if threshold is not None else {})
    return AlertRow("inc", "fp", "web-01", "threshold", "critical", "x", labels, True, 0, 0)


def test_a_traffic_drop_recovers_above_the_alerts_floor() -> None:
    playbook = load_playbooks().match("traffic_drop", "web")
    assert playbook is not None
    watched = _verification(playbook, alert("requests_per_second", "50"))
    assert (watched["metric"], watched.get("above"), watched.get("below")) == (
        "requests_per_second", 50.0, None)
    assert watched["health_check"] is True
    back = [(0, 120.0), (100, 90.0)]
    assert verify(back, "requests_per_second", 50, 0, 100, False, above=True) == (
        "passed", "requests_per_second over 50 for the window (min 90)")
    still_low = [(0, 20.0), (100, 22.0)]
    assert verify(still_low, "requests_per_second", 50, 0, 100, False, above=True) == (
        "failed", "requests_per_second still at 20 (threshold 50)")


def test_the_seed_restart_stays_below_80_whatever_the_alert_says() -> None:
    playbook = load_playbooks().match("memory_leak", "web")
    assert playbook is not None
    watched = _verification(playbook, alert("memory_utilization", "90"))
    assert (watched["metric"], watched["below"], watched["grace_s"]) == (
        "memory_utilization", 80.0, 30.0)


def test_no_threshold_anywhere_leaves_only_the_health_check() -> None:
    playbook = load_playbooks().match("traffic_drop", "web")
    assert playbook is not None
    watched = _verification(playbook, alert("requests_per_second", None))
    assert watched.get("above") is None and watched.get("below") is None
    assert watched["health_check"] is True
