"""The records self-healing publishes: ``incident`` and ``remediation`` events on
``infrastructure.events`` and escalation alerts on ``alerts.notifications``.

Event ids are derived from what they announce (an incident's id and status, a
remediation's id and status), so publishing again after a restart repeats a record
instead of inventing a second one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dharma.agents.healing.signals import ESCALATION
from dharma.sinks.incidents import IncidentRow, RemediationRow
from dharma.streams.alerting import alert_record

__all__ = ["escalation_alert", "incident_event", "remediation_event"]


def _event_id(*parts: object) -> str:
    return "heal-" + hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]


def incident_event(incident: IncidentRow, ts: int) -> dict[str, Any]:
    """The ``incident`` event announcing ``incident``'s current status."""
    status = incident.status
    return {
        "event_id": _event_id(incident.incident_id, status),
        "ts": ts, "type": "incident", "resource_id": incident.root or "unknown",
        "attributes": {
            "incident_id": incident.incident_id, "status": status,
            "severity": incident.severity, "title": incident.title,
            "category": incident.category or "unknown", "root_cause": incident.root,
            "symptoms": list(incident.symptoms), "confidence": incident.confidence,
            "mttr_ms": incident.mttr_ms, "annotations": list(incident.annotations),
        },
    }


def remediation_event(r: RemediationRow, ts: int) -> dict[str, Any]:
    """The ``remediation`` event announcing a decision (requested, skipped, deferred,
    awaiting approval) or a failure the healing agent declares (an expired lease)."""
    return {
        "event_id": _event_id(r.remediation_id, r.status, r.guard or ""),
        "ts": ts, "type": "remediation", "resource_id": r.target,
        "attributes": {
            "remediation_id": r.remediation_id, "action": r.action, "status": r.status,
            "reason": r.reason, "incident_id": r.incident_id, "guard": r.guard,
            "playbook": r.playbook, "risk": r.risk, "estimated_downtime_s": r.downtime_s,
            "attempt": r.attempt, "dry_run": r.dry_run, "rollback_of": r.rollback_of,
            "parameters": dict(r.parameters),
        },
    }


def escalation_alert(incident: IncidentRow, target: str, reason: str, key: str,
                     ts: int) -> dict[str, Any]:
    """A critical alert for the on-call engineer: what could not be healed, and why."""
    return alert_record(
        kind=ESCALATION, component="healing", source=target, subject=incident.incident_id,
        status="firing", severity="critical",
        summary=f"Escalated {incident.incident_id} ({incident.title}): {reason}", ts=ts,
        episode_start=incident.opened_at, cause=key,
        labels={"incident_id": incident.incident_id, "reason": reason,
                "category": incident.category or "unknown"})
