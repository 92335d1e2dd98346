"""What the healing agent reads, as plain values: alerts from ``alerts.notifications``
and the ``health_check``, ``deployment``, ``chaos_experiment``, ``remediation`` and
``incident`` events of ``infrastructure.events``.

A record that breaks the contract, names a resource that is not a name, or is dated
beyond the worker's clock plus skew is refused (:class:`ContractViolation`, so it is
dead-lettered with the reason); the other infrastructure events (assets,
dependencies) are not the healing agent's and pass by as ``None``.

>>> alert = {"alert_id": "a1", "fingerprint": "f1", "status": "firing",
...          "severity": "critical", "kind": "threshold", "source": "web-server-01",
...          "summary": "High Memory Usage on web-server-01", "ts": 1000,
...          "labels": {"metric": "memory_utilization", "threshold": "80", "value": "92"}}
>>> signal = to_alert(alert, latest=2000)
>>> signal.metric, signal.threshold, signal.value
('memory_utilization', 80.0, 92.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dharma.streams.alerting import fingerprint
from dharma.streams.errors import ContractViolation
from dharma.streams.records import MAX_NAME, checked_name

__all__ = ["ESCALATION", "HEALTH_CHECK", "Activity", "AlertSignal", "Health", "IncidentNote",
           "Report", "Signal", "to_alert", "to_event"]

#: The kind of the alerts the healing agent raises itself (it never acts on them).
ESCALATION = "escalation"

#: The kind of the alerts healing makes of failing health checks.
HEALTH_CHECK = "health_check"

#: Remediation statuses an executor reports (the others are the healing agent's own).
REPORTED = ("started", "succeeded", "failed")



def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


def _number(labels: Mapping[str, str], key: str) -> float | None:
    try:
        number = float(labels[key])
    except (KeyError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _not_after(ts: int, latest: int) -> int:
    if ts > latest:
        raise ContractViolation(f"ts {ts} is later than the worker's clock allows ({latest})")
    return ts


@dataclass(frozen=True)
class AlertSignal:
    """One notification of ``alerts.notifications``; ``metric``, ``threshold`` and
    ``value`` come from its labels when they are there (as Prometheus Alertmanager's
    bridged alerts and the anomaly capability's carry them)."""

    alert_id: str
    fingerprint: str
    firing: bool
    severity: str
    kind: str
    source: str
    summary: str
    ts: int
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def metric(self) -> str | None:
        return self.labels.get("metric") or None

    @property
    def threshold(self) -> float | None:
        return _number(self.labels, "threshold")

    @property
    def value(self) -> float | None:
        return _number(self.labels, "value")


@dataclass(frozen=True)
class Health:
    """A health check of ``resource_id``: passing or not."""

    event_id: str
    resource_id: str
    ts: int
    passing: bool
    check: str = ""
    message: str = ""

    def as_alert(self) -> AlertSignal:
        """The check as an alert (the seed's other detection source): firing while it
        fails, resolved when it passes, one fingerprint per resource and check."""
        status = "passing" if self.passing else "failing"
        return AlertSignal(
            alert_id=f"health:{self.event_id}",
            fingerprint=fingerprint(self.resource_id, self.check, HEALTH_CHECK),
            firing=not self.passing, severity="critical", kind=HEALTH_CHECK,
            source=self.resource_id,
            summary=f"Health check {self.check} {status} on {self.resource_id}"
                    + (f": {self.message}" if self.message and not self.passing else ""),
            ts=self.ts, labels={"component": HEALTH_CHECK, "check": self.check})


@dataclass(frozen=True)
class Activity:
    """A deployment or chaos experiment starting (``active``) or ending; ``until``:
    when a chaos experiment ends by itself (ms), ``scope``: the resources it may hit."""

    event_id: str
    kind: str  # "deployment" or "chaos_experiment"
    activity_id: str
    resource_id: str
    ts: int
    active: bool
    until: int | None = None
    scope: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """An executor's report on a remediation: started, succeeded or failed."""

    event_id: str
    remediation_id: str
    resource_id: str
    action: str
    status: str
    ts: int
    reason: str


@dataclass(frozen=True)
class IncidentNote:
    """An incident event from outside: a human acknowledging or resolving it."""

    event_id: str
    incident_id: str
    status: str
    ts: int


Signal = AlertSignal | Health | Activity | Report | IncidentNote


def to_alert(raw: Mapping[str, Any], latest: int) -> AlertSignal:
    """A decoded alert as a signal (:class:`ContractViolation` when it is not one)."""
    labels = raw.get("labels") or {}
    return AlertSignal(
        alert_id=str(raw["alert_id"]), fingerprint=checked_name(raw["fingerprint"], "fingerprint"),
        firing=raw["status"] == "firing", severity=str(raw["severity"]), kind=str(raw["kind"]),
        source=checked_name(raw["source"], "source"), summary=str(raw["summary"]),
        ts=_not_after(_ms(raw["ts"]), latest), labels=dict(labels))


def to_event(raw: Mapping[str, Any], latest: int) -> Signal | None:
    """A decoded infrastructure event as a signal; ``None`` for the kinds healing does
    not read and for the remediation statuses it publishes itself."""
    kind, attrs = raw["type"], raw["attributes"]
    if kind not in ("health_check", "deployment", "chaos_experiment", "remediation", "incident"):
        return None
    event_id, ts = str(raw["event_id"]), _not_after(_ms(raw["ts"]), latest)
    resource = checked_name(raw["resource_id"], "resource_id")
    if kind == "health_check":
        return Health(event_id, resource, ts, attrs["status"] == "passing",
                      str(attrs["check"])[:MAX_NAME], str(attrs.get("message") or "")[:200])
    if kind == "deployment":
        deployment = checked_name(attrs["deployment_id"], "deployment_id")
        return Activity(event_id, "deployment", deployment,
                        resource, ts, attrs["status"] == "started")
    if kind == "chaos_experiment":
        duration = int(attrs["duration_s"])
        if duration < 0:
            raise ContractViolation(f"duration_s {duration} is negative")
        scope = tuple(checked_name(r, "blast_radius") for r in attrs.get("blast_radius") or ())
        experiment = checked_name(attrs["experiment_id"], "experiment_id")
        return Activity(event_id, "chaos_experiment", experiment, resource, ts,
                        attrs["status"] == "started", ts + duration * 1000,
                        tuple(sorted({resource, *scope})))
    if kind == "remediation":
        if attrs["status"] not in REPORTED:
            return None
        return Report(event_id, checked_name(attrs["remediation_id"], "remediation_id"), resource,
                      str(attrs["action"]), attrs["status"], ts, str(attrs["reason"]))
    incident = checked_name(attrs["incident_id"], "incident_id")
    return IncidentNote(event_id, incident, attrs["status"], ts)
