"""Where self-healing's state lives, and the rows its store takes.

Healing keeps no Faust table: its state is the incident store in PostgreSQL
(:mod:`dharma.sinks.incidents`).  These build that store's rows from what the loop
decided, so the engine reads as the seed's steps.
"""

from __future__ import annotations

from typing import Any

from dharma.agents.healing.logic import incident_id, remediation_id
from dharma.agents.healing.playbooks import Playbook
from dharma.agents.healing.signals import AlertSignal
from dharma.sinks.incidents import AlertRow, IncidentRow, RemediationRow

__all__ = ["alert_row", "new_incident", "remediation_row", "rollback_row"]


def new_incident(alert: AlertSignal, due_at: int) -> IncidentRow:
    """The incident ``alert`` opens, collecting alerts until ``due_at`` (wall ms)."""
    return IncidentRow(incident_id(alert.fingerprint, alert.ts), "pending",
                       opened_at=alert.ts, due_at=due_at, severity=alert.severity,
                       title=alert.summary)


def alert_row(alert: AlertSignal, incident: str, depends_on: set[str]) -> AlertRow:
    """``alert`` as one of ``incident``'s, with its source's dependencies."""
    return AlertRow(incident, alert.fingerprint, alert.source, alert.kind, alert.severity,
                    alert.summary, dict(alert.labels), alert.firing, alert.ts, alert.ts,
                    sorted(depends_on))


def remediation_row(incident: IncidentRow, alert: AlertRow, playbook: Playbook | None,
                    target: str, attempt: int, now: int, dry_run: bool) -> RemediationRow:
    """A decision about to go through the guards (status ``decided``)."""
    ref = playbook.ref if playbook else "none"
    return RemediationRow(
        remediation_id(incident.incident_id, ref, attempt), incident.incident_id, "remediate",
        ref, attempt, target, playbook.action if playbook else "notify", status="decided",
        reason="", decided_at=now, risk=playbook.risk if playbook else None,
        downtime_s=playbook.estimated_downtime_s if playbook else None,
        parameters=_parameters(alert, incident), verification=_verification(playbook, alert),
        dry_run=dry_run)


def rollback_row(r: RemediationRow, action: str, now: int, lease_ms: int) -> RemediationRow:
    """The request that rolls ``r`` back with ``action``."""
    return RemediationRow(
        remediation_id(r.incident_id, r.playbook, r.attempt, "rollback"), r.incident_id,
        "rollback", r.playbook, r.attempt, r.target, action, status="requested",
        reason=f"rolling back {r.action}: verification failed", decided_at=now, risk=r.risk,
        rollback_of=r.remediation_id, parameters=r.parameters, requested_at=now,
        lease_until=now + lease_ms)


def _parameters(alert: AlertRow, incident: IncidentRow) -> dict[str, str]:
    params = {"incident_title": incident.title, "category": incident.category or "unknown"}
    if metric := alert.labels.get("metric"):
        params["metric"] = metric
    return params


def _verification(playbook: Playbook | None, alert: AlertRow) -> dict[str, Any]:
    """What the verification watches: the playbook's metric and threshold, else the
    alert's (``labels.metric``, ``labels.threshold``)."""
    if playbook is None:
        return {}
    v = playbook.verification
    below = v.below
    if below is None:
        try:
            below = float(alert.labels["threshold"])
        except (KeyError, ValueError):
            below = None
    return {"metric": v.metric or alert.labels.get("metric"), "below": below,
            "health_check": v.health_check, "window_s": v.window_s, "grace_s": v.grace_s,
            "rollback": playbook.rollback}
