"""What the healing agent reads: which records become signals, which pass by, and
which are refused (to be dead-lettered with the reason)."""

from __future__ import annotations

from typing import Any

import pytest

from dharma.agents.healing.signals import (
    Activity,
    Health,
    IncidentNote,
    Report,
    to_alert,
    to_event,
)
from dharma.streams.errors import ContractViolation

NOW = 1_800_000_000_000


def event(kind: str, attributes: dict[str, Any], ts: int = NOW,
          resource: str = "web-01") -> dict[str, Any]:
    return {"event_id": "e1", "ts": ts, "type": kind, "resource_id": resource,
            "attributes": attributes}


def remediation(status: str) -> dict[str, Any]:
    return event("remediation", {"remediation_id": "rem-1", "action": "restart_service",
                                 "status": status, "reason": "ok"})


def test_alerts_carry_their_metric_threshold_and_value_when_labelled() -> None:
    raw = {"alert_id": "a", "fingerprint": "f", "status": "resolved", "severity": "warning",
           "kind": "anomaly", "source": "db-1", "summary": "s", "ts": NOW,
           "labels": {"metric": "cpu", "threshold": "nan", "value": "x"}}
    alert = to_alert(raw, NOW)
    assert (alert.firing, alert.metric, alert.threshold, alert.value) == (False, "cpu", None,
                                                                         None)
    with pytest.raises(ContractViolation, match="later than the worker's clock"):
        to_alert(raw, NOW - 1)
    with pytest.raises(ContractViolation, match="source"):
        to_alert({**raw, "source": "db\u202e-1"}, NOW)


def test_infrastructure_events_become_signals_or_pass_by() -> None:
    assert to_event(event("asset", {}), NOW) is None
    assert to_event(remediation("requested"), NOW) is None  # our own decisions
    assert to_event(remediation("skipped"), NOW) is None
    assert isinstance(to_event(remediation("succeeded"), NOW), Report)
    health = to_event(event("health_check", {"check": "http_get_/health", "status": "failing",
                                             "message": "502"}), NOW)
    assert health == Health("e1", "web-01", NOW, False, "http_get_/health", "502")
    assert isinstance(health, Health)
    failing = health.as_alert()
    assert (failing.firing, failing.kind, failing.summary) == (
        True, "health_check", "Health check http_get_/health failing on web-01: 502")
    passing = Health("e2", "web-01", NOW + 1, True, "http_get_/health").as_alert()
    assert passing.fingerprint == failing.fingerprint and not passing.firing
    note = to_event(event("incident", {"incident_id": "inc-1", "status": "acknowledged",
                                       "severity": "critical", "title": "t",
                                       "category": "memory_leak"}), NOW)
    assert note == IncidentNote("e1", "inc-1", "acknowledged", NOW)


def test_a_chaos_experiment_covers_its_blast_radius_until_its_planned_end() -> None:
    chaos = to_event(event("chaos_experiment", {
        "experiment_id": "x1", "fault": "latency", "status": "started", "duration_s": 60,
        "blast_radius": ["api-1", "web-01"]}), NOW)
    assert chaos == Activity("e1", "chaos_experiment", "x1", "web-01", NOW, True,
                             NOW + 60_000, ("api-1", "web-01"))
    with pytest.raises(ContractViolation, match="negative"):
        to_event(event("chaos_experiment", {"experiment_id": "x1", "fault": "f",
                                            "status": "started", "duration_s": -1}), NOW)
    ended = to_event(event("deployment", {"deployment_id": "d1", "version": "2",
                                          "status": "rolled_back", "initiator": "ci"}), NOW)
    assert isinstance(ended, Activity) and not ended.active
