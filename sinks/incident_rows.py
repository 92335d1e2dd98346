"""The rows of self-healing's incident store (:mod:`dharma.sinks.incidents`) and its
tables: plain values, whose meaning the healing capability decides."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DDL", "AlertRow", "IncidentRow", "RemediationRow", "TimelineEntry", "values_of"]

DDL = """
CREATE TABLE IF NOT EXISTS incidents (
    incident_id text PRIMARY KEY,
    status text NOT NULL,
    published text,
    opened_at bigint NOT NULL,
    due_at bigint NOT NULL,
    severity text NOT NULL,
    title text NOT NULL,
    root text,
    symptoms jsonb NOT NULL DEFAULT '[]',
    category text,
    confidence double precision,
    annotations jsonb NOT NULL DEFAULT '[]',
    changed boolean NOT NULL DEFAULT false,
    resolved_at bigint,
    mttr_ms bigint
);
CREATE INDEX IF NOT EXISTS incidents_live ON incidents (due_at) WHERE status <> 'resolved';
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_at, incident_id);
CREATE TABLE IF NOT EXISTS incident_alerts (
    incident_id text NOT NULL,
    fingerprint text NOT NULL,
    source text NOT NULL,
    kind text NOT NULL,
    severity text NOT NULL,
    summary text NOT NULL,
    labels jsonb NOT NULL,
    firing boolean NOT NULL,
    first_ts bigint NOT NULL,
    last_ts bigint NOT NULL,
    depends_on jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (incident_id, fingerprint)
);
CREATE INDEX IF NOT EXISTS incident_alerts_fingerprint ON incident_alerts (fingerprint);
CREATE INDEX IF NOT EXISTS incident_alerts_source ON incident_alerts (source);
CREATE INDEX IF NOT EXISTS incident_alerts_depends_on ON incident_alerts USING gin (depends_on);
CREATE TABLE IF NOT EXISTS incident_timeline (
    key text PRIMARY KEY,
    incident_id text NOT NULL,
    at bigint NOT NULL,
    kind text NOT NULL,
    detail jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_timeline_incident ON incident_timeline (incident_id, at);
CREATE TABLE IF NOT EXISTS remediations (
    remediation_id text PRIMARY KEY,
    incident_id text NOT NULL,
    kind text NOT NULL,
    playbook text NOT NULL,
    attempt int NOT NULL,
    target text NOT NULL,
    action text NOT NULL,
    status text NOT NULL,
    guard text,
    reason text NOT NULL,
    risk text,
    downtime_s int,
    dry_run boolean NOT NULL DEFAULT false,
    rollback_of text,
    parameters jsonb NOT NULL DEFAULT '{}',
    verification jsonb NOT NULL DEFAULT '{}',
    decided_at bigint NOT NULL,
    requested_at bigint,
    lease_until bigint,
    finished_ts bigint,
    finished_wall bigint,
    outcome text,
    approved_by text,
    published text,
    UNIQUE (incident_id, playbook, attempt, kind)
);
CREATE INDEX IF NOT EXISTS remediations_open ON remediations (status)
    WHERE status NOT IN ('skipped', 'failed') AND outcome IS NULL;
CREATE INDEX IF NOT EXISTS remediations_recent ON remediations (playbook, requested_at);
CREATE TABLE IF NOT EXISTS healing_activity (
    kind text NOT NULL,
    activity_id text NOT NULL,
    resource_id text NOT NULL,
    scope text[] NOT NULL,
    started_at bigint,
    until bigint,
    ended_at bigint,
    PRIMARY KEY (kind, activity_id)
);
CREATE TABLE IF NOT EXISTS healing_health (
    resource_id text PRIMARY KEY,
    ts bigint NOT NULL,
    passing boolean NOT NULL,
    last_failing_ts bigint
);
CREATE TABLE IF NOT EXISTS healing_escalations (
    key text PRIMARY KEY,
    incident_id text NOT NULL,
    at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS healing_controls (
    name text PRIMARY KEY,
    value text NOT NULL,
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass
class IncidentRow:
    """An incident: ``pending`` (collecting alerts until ``due_at``, wall ms), ``open``,
    ``acknowledged`` or ``resolved``; ``opened_at``: its first alert's time."""

    incident_id: str
    status: str
    opened_at: int
    due_at: int
    severity: str
    title: str
    root: str | None = None
    symptoms: list[str] = field(default_factory=list)
    category: str | None = None
    confidence: float | None = None
    annotations: list[str] = field(default_factory=list)
    changed: bool = False
    resolved_at: int | None = None
    mttr_ms: int | None = None
    published: str | None = None


@dataclass
class AlertRow:
    """An alert (one fingerprint) of an incident; ``depends_on``: its source's
    dependencies in the CMDB at the alert's time."""

    incident_id: str
    fingerprint: str
    source: str
    kind: str
    severity: str
    summary: str
    labels: dict[str, str]
    firing: bool
    first_ts: int
    last_ts: int
    depends_on: list[str] = field(default_factory=list)


@dataclass
class RemediationRow:
    """One remediation decision and what became of it."""

    remediation_id: str
    incident_id: str
    kind: str  # remediate or rollback
    playbook: str
    attempt: int
    target: str
    action: str
    status: str
    reason: str
    decided_at: int
    guard: str | None = None
    risk: str | None = None
    downtime_s: int | None = None
    dry_run: bool = False
    rollback_of: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    requested_at: int | None = None
    lease_until: int | None = None
    finished_ts: int | None = None
    finished_wall: int | None = None
    outcome: str | None = None
    approved_by: str | None = None
    published: str | None = None


@dataclass(frozen=True)
class TimelineEntry:
    """One line of an incident's timeline; ``key`` makes writing it twice harmless."""

    key: str
    incident_id: str
    at: int
    kind: str
    detail: dict[str, Any]


_JSON = {"symptoms", "annotations", "labels", "depends_on", "parameters", "verification",
         "detail"}


def values_of(row: Any) -> dict[str, Any]:
    """``row``'s columns as parameters (lists and mappings as JSON)."""
    return {k: json.dumps(v) if k in _JSON else v for k, v in asdict(row).items()}
