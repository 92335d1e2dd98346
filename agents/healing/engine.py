"""The healing loop over its stores: signals in, incidents and remediations out.

:class:`Healer` keeps nothing in memory between calls: every step reads what it
needs from the incident store (PostgreSQL) and the CMDB, decides with the pure
functions of :mod:`~dharma.agents.healing.logic`, stores the result under keys
derived from what it names, and only then publishes.  So a worker killed at any
point, or a redelivered batch, neither loses a decision nor makes one twice.

The seed's flow, step by step: triage (:meth:`Healer.on_alert` groups alerts into
incidents, Alertmanager-like), root-cause analysis and strategy selection when the
group wait ends (:meth:`Healer._open`: the CMDB roots the incident, the stored
metrics classify it, the playbooks choose), pre-remediation checks (the guards of
:func:`~dharma.agents.healing.logic.decide`), execution through the bus (a
``requested`` event; executors report), validation (:mod:`.followup`), and
rollback with escalation when it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dharma.agents.healing.classify import classify
from dharma.agents.healing.logic import (
    Limits,
    Situation,
    Verdict,
    decide,
    incident_id,
    pre_checks,
    root_cause,
)
from dharma.agents.healing.playbooks import Playbook, PlaybookSet
from dharma.agents.healing.records import escalation_alert, incident_event, remediation_event
from dharma.agents.healing.signals import (
    ESCALATION,
    Activity,
    AlertSignal,
    Health,
    IncidentNote,
    Report,
    Signal,
)
from dharma.agents.healing.state import alert_row, new_incident, remediation_row
from dharma.sinks.asset_changes import AssetChangeSink, ChangeRow
from dharma.sinks.cmdb import Cmdb, UnknownAsset
from dharma.sinks.incidents import (
    AlertRow,
    IncidentRow,
    IncidentStore,
    RemediationRow,
    TimelineEntry,
)
from dharma.streams.errors import ContractViolation
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import HealingSettings

__all__ = ["Healer", "Publisher"]

HOUR_MS = 3_600_000
_STATUS_ORDER = {"pending": 0, "open": 1, "acknowledged": 2, "resolved": 3}


@dataclass
class Publisher:
    """Where the healer's records go: callables taking an ``infrastructure.events``
    record or an ``alerts.notifications`` record (the agent encodes and emits them)."""

    event: Callable[[dict[str, Any]], None]
    alert: Callable[[dict[str, Any]], None]


class Healer:
    """The self-healing loop (see the module docstring)."""

    def __init__(self, store: IncidentStore, cmdb: Cmdb, history: AssetChangeSink,
                 playbooks: PlaybookSet, publish: Publisher, config: HealingSettings,
                 metrics: PipelineMetrics) -> None:
        self.store, self.cmdb, self.history = store, cmdb, history
        self.playbooks, self.publish, self.config, self.metrics = (
            playbooks, publish, config, metrics)
        self.limits = Limits(cooldown_ms=int(config.cooldown_s * 1000),
                             rate_per_hour=config.rate_limit_per_hour,
                             max_unhealthy=config.max_unhealthy, dry_run=config.dry_run)

    # -- signals ----------------------------------------------------------------------
    async def handle(self, signals: Sequence[tuple[Any, Signal]], now: int
                     ) -> list[tuple[Any, ContractViolation]]:
        """Apply a batch of signals; the ones refused, with why (to dead-letter)."""
        refused = []
        for event, signal in signals:
            try:
                await self._apply(signal, now)
            except ContractViolation as exc:
                refused.append((event, exc))
        return refused

    async def _apply(self, signal: Signal, now: int) -> None:
        if isinstance(signal, AlertSignal):
            if (signal.kind != ESCALATION and signal.labels.get("component")
                    not in self.config.ignored_components):
                await self.on_alert(signal, now)
        elif isinstance(signal, Health):
            await self.store.record_health(signal.resource_id, signal.ts, signal.passing)
            await self.on_alert(signal.as_alert(), now)
        elif isinstance(signal, Activity):
            await self.store.record_activity(signal.kind, signal.activity_id, signal.resource_id,
                                             signal.scope, signal.ts, signal.active, signal.until)
        elif isinstance(signal, Report):
            await self.on_report(signal, now)
        elif isinstance(signal, IncidentNote):
            await self.on_note(signal, now)

    async def on_alert(self, alert: AlertSignal, now: int) -> None:
        """Attach an alert to its incident: the one holding its fingerprint, else one
        holding a resource it depends on or that depends on it, else a new one that
        collects alerts for the group wait."""
        known = await self.store.live_alert(alert.fingerprint)
        if known is None and not alert.firing:
            return  # the end of an episode no incident holds
        if known is not None:
            was_firing, known.firing = known.firing, alert.firing
            known.last_ts = max(known.last_ts, alert.ts)
            known.severity = alert.severity
            await self.store.save_alert(known)
            incident_of = known.incident_id
            if was_firing != alert.firing:
                await self._mark_changed(incident_of)
        else:
            incident_of = await self._join_or_open(alert, now)
        await self.store.flush([TimelineEntry(
            f"alert:{alert.alert_id}", incident_of, alert.ts, "alert",
            {"source": alert.source, "status": "firing" if alert.firing else "resolved",
             "severity": alert.severity, "summary": alert.summary, "kind": alert.kind,
             "labels": dict(alert.labels)})])

    async def _join_or_open(self, alert: AlertSignal, now: int) -> str:
        deps = {d.id for d in await self.cmdb.dependencies(
            alert.source, self.config.topology_depth, at=alert.ts)}
        related = await self.store.related_alerts(alert.source, sorted(deps))
        target = min(related, key=lambda a: (a.first_ts, a.incident_id)).incident_id \
            if related else incident_id(alert.fingerprint, alert.ts)
        if others := sorted({a.incident_id for a in related} - {target}):
            await self.store.merge(target, others)
        row = alert_row(alert, target, deps)
        if not related:
            await self.store.add_incident(new_incident(
                alert, due_at=now + int(self.config.group_wait_s * 1000)))
        else:
            await self._mark_changed(target, began=alert.ts)
        await self.store.save_alert(row)
        return target

    async def _mark_changed(self, incident: str, began: int | None = None) -> None:
        """Note that an incident's alerts changed; ``began``: a joining alert's time,
        which moves the incident's start back when it is earlier (whatever the order
        the alerts arrived in, the incident began with its first)."""
        for row in await self.store.incidents(ids=[incident]):
            earlier = began is not None and began < row.opened_at
            if row.status != "resolved" and (earlier or not row.changed):
                row.changed = True
                row.opened_at = min(row.opened_at, began) if began is not None else row.opened_at
                await self.store.save_incident(row)

    async def on_report(self, report: Report, now: int) -> None:
        """An executor's report moves its remediation on (never back)."""
        found = await self.store.remediations(ids=[report.remediation_id])
        if not found:
            return  # not one of ours (another healer's, or a forgery): nothing to move
        r = found[0]
        if (report.resource_id, report.action) != (r.target, r.action):
            raise ContractViolation(
                f"report on {r.remediation_id} names {report.resource_id}/{report.action}, "
                f"not {r.target}/{r.action}")
        order = ("requested", "started", "succeeded")
        if r.status not in order or (report.status in order
                                     and order.index(report.status) <= order.index(r.status)):
            return  # a repeat, or a report on something never requested
        r.status = r.published = report.status  # the executor published it
        await self.note(r.incident_id, f"report:{report.event_id}", report.ts, "executor",
                         {"remediation_id": r.remediation_id, "status": report.status,
                          "reason": report.reason})
        if report.status == "started":
            await self.store.save_remediation(r)
            return
        r.finished_ts, r.finished_wall = report.ts, now
        self.metrics.remediations.labels(report.status).inc()
        if report.status == "failed":
            await self.failed(r, f"executor failed: {report.reason}", now)
        elif r.kind == "rollback":
            r.outcome = "rolled_back"
            self.metrics.remediations.labels("rolled_back").inc()
        await self.store.save_remediation(r)

    async def on_note(self, note: IncidentNote, now: int) -> None:
        """An incident acknowledged or resolved from outside (a human, a pager)."""
        found = await self.store.incidents(ids=[note.incident_id])
        if not found or _STATUS_ORDER[note.status] <= _STATUS_ORDER[found[0].status]:
            return  # unknown, or an echo of what was published already
        incident = found[0]
        if incident.status == "pending" and note.status == "acknowledged":
            return  # not opened yet: the acknowledgement must not keep it from its decision
        await self.note(incident.incident_id, f"note:{note.event_id}", note.ts, note.status,
                         {"by": "infrastructure.events"})
        if note.status == "resolved":
            await self.resolve(incident, note.ts, "resolved from outside", now)
        else:
            incident.status = note.status
            await self.store.save_incident(incident)

    # -- opening an incident: root cause, classification, strategy ------------------------
    async def open_due(self, now: int) -> None:
        """Open the incidents whose group wait is over; publish the grown ones whose
        group interval is."""
        for incident in await self.store.due(now):
            if incident.status == "pending":
                await self._open(incident, now)
            elif incident.changed:
                await self._regroup(incident, now)

    async def _open(self, incident: IncidentRow, now: int) -> None:
        recorded = await self.store.alerts_of(incident.incident_id)
        alerts = [a for a in recorded if a.firing]
        if not alerts:  # every alert ended within the group wait: nothing to heal
            if recorded:
                self._root(incident, recorded)
            # none recorded: a row written by hand, or a crash between the incident and
            # its first alert; closed, never left to stop every tick that reads it
            why = ("every alert ended within the group wait" if recorded
                   else "no alert was recorded for it")
            incident.status = "open"
            await self.announce(incident, now)
            await self.resolve(incident, max((a.last_ts for a in recorded), default=now),
                               why, now)
            return
        self._root(incident, alerts)
        root_alert = max((a for a in alerts if a.source == incident.root),
                         key=lambda a: (_SEVERITY.get(a.severity, 0), -a.first_ts))
        last = max(a.last_ts for a in alerts)
        series = await self.store.samples(
            incident.root or "", [], since=last - int(self.config.history_s * 1000))
        found = classify(series, root_alert.labels.get("metric"))
        incident.category, incident.confidence = found.issue_type, round(found.confidence, 3)
        incident.title, incident.severity = root_alert.summary, root_alert.severity
        incident.status, incident.changed = "open", False
        incident.due_at = now + int(self.config.group_interval_s * 1000)
        await self.store.save_incident(incident)
        await self.announce(incident, now)
        await self.note(incident.incident_id, "opened", now, "opened", {
            "root_cause": incident.root, "symptoms": incident.symptoms,
            "issue_type": found.issue_type, "confidence": incident.confidence,
            "evidence": found.evidence})
        await self._decide(incident, root_alert, attempt=1, now=now)

    def _root(self, incident: IncidentRow, alerts: Sequence[AlertRow]) -> None:
        """Root the incident among the alerts that began within its group wait (event
        time): a dependency that started alerting later cannot have caused what was
        already failing, so it is a symptom or a coincidence, never the root."""
        began_by = min(a.first_ts for a in alerts) + int(self.config.group_wait_s * 1000)
        early = [a for a in alerts if a.first_ts <= began_by] or list(alerts)
        depends: dict[str, frozenset[str]] = {}
        for a in early:
            depends[a.source] = depends.get(a.source, frozenset()) | frozenset(a.depends_on)
        incident.root, _ = root_cause(depends)
        incident.symptoms = sorted({a.source for a in alerts} - {incident.root})

    async def _regroup(self, incident: IncidentRow, now: int) -> None:
        """Alerts joined an open incident: publish it again, with its new symptoms."""
        alerts = [a for a in await self.store.alerts_of(incident.incident_id) if a.firing]
        root = incident.root
        if alerts:
            self._root(incident, alerts)
            incident.root = root  # a decided incident keeps its root; new alerts are symptoms
            incident.symptoms = sorted({a.source for a in alerts} - {root or ""})
        incident.changed, incident.published = False, None
        incident.due_at = now + int(self.config.group_interval_s * 1000)
        await self.store.save_incident(incident)

    # -- the guards -------------------------------------------------------------------
    async def _decide(self, incident: IncidentRow, alert: AlertRow, attempt: int,
                      now: int) -> None:
        target = incident.root or alert.source
        asset_type = await self._asset_type(target)
        playbook = self.playbooks.match(incident.category or "unknown", asset_type)
        r = remediation_row(incident, alert, playbook, target, attempt, now, self.limits.dry_run)
        if not await self.store.add_remediation(r):
            return  # decided already (a replay, or a restart after the decision)
        await self.rule(r, incident, playbook, now, retry=attempt > 1)

    async def rule(self, r: RemediationRow, incident: IncidentRow, playbook: Playbook | None,
                    now: int, retry: bool = False) -> None:
        """Run the guards on a stored decision and store their verdict."""
        situation, group = await self._situation(r, incident, now, retry)
        verdict = decide(playbook, situation, self.limits)
        if (verdict.status, verdict.guard) == (r.status, r.guard):
            return  # still deferred, or still waiting: nothing new to say
        r.status, r.guard, r.reason = verdict.status, verdict.guard, verdict.reason
        if verdict.requests:
            timeout = (playbook.timeout_s if playbook and playbook.timeout_s
                       else self.config.lease_s)
            r.requested_at, r.lease_until = now, now + int(timeout * 1000)
            self.metrics.remediations.labels("requested").inc()
            if incident.status == "open":
                incident.status = "acknowledged"
                await self.store.save_incident(incident)
        else:
            self.metrics.remediation_skips.labels(verdict.guard or "").inc()
        await self.store.save_remediation(r)
        await self.note(incident.incident_id, f"decision:{r.remediation_id}:{r.status}:{r.guard}",
                        now, "decision", {
                            "remediation_id": r.remediation_id, "action": r.action,
                            "playbook": r.playbook, "status": r.status, "guard": r.guard,
                            "reason": r.reason, "target": r.target,
                            "pre_checks": pre_checks(playbook, situation)})
        await self._after_verdict(verdict, r, incident, group, now)

    async def _after_verdict(self, verdict: Verdict, r: RemediationRow, incident: IncidentRow,
                             group: str, now: int) -> None:
        if verdict.guard == "circuit_breaker":
            await self.escalate(incident, r.target, verdict.reason, f"breaker:{group}", now)
            return
        # the group is healthy enough again: its next trip escalates again
        await self.store.forget_escalation(f"breaker:{group}")
        if verdict.guard in ("chaos_experiment", "no_playbook"):
            incident.annotations = sorted({*incident.annotations,
                                           f"not remediated: {verdict.reason}"})
            incident.published = None
            await self.store.save_incident(incident)

    async def _situation(self, r: RemediationRow, incident: IncidentRow, now: int,
                         retry: bool) -> tuple[Situation, str]:
        try:
            group, members = await self.cmdb.group(r.target)
        except UnknownAsset:
            group, members = f"asset/{r.target}", [r.target]
        alerting = await self.store.alerting(members)
        health = await self.store.health(members)
        unhealthy = sum(1 for m in members if m in alerting or not health.get(m, (0, True, 0))[1])
        dependencies = await self.cmdb.dependencies(r.target, self.config.topology_depth)
        sick = await self.store.alerting([d.id for d in dependencies])
        situation = Situation(
            now=now, paused=await self.store.paused(), members=len(members),
            unhealthy=unhealthy,
            # an experiment running when the incident began caused it: event time
            chaos=await self.store.active("chaos_experiment", r.target, at=incident.opened_at),
            deployment=await self.store.active("deployment", r.target),
            last_remediated=await self.store.last_requested(r.target, r.playbook,
                                                            incident.incident_id),
            requested=await self.store.requested_since(r.playbook, now - HOUR_MS),
            approved=r.approved_by is not None, retry=retry, dependencies_healthy=not sick)
        return situation, group

    async def _asset_type(self, target: str) -> str | None:
        try:
            return (await self.cmdb.asset(target)).get("asset_type")
        except UnknownAsset:
            return None

    # -- shared steps -----------------------------------------------------------------
    async def failed(self, r: RemediationRow, why: str, now: int) -> None:
        """A remediation failed: try again while the playbook allows, else escalate."""
        r.outcome = "failed"
        incident = (await self.store.incidents(ids=[r.incident_id]))[0]
        playbook = self.playbook(r.playbook)
        if (r.kind == "remediate" and playbook is not None
                and r.attempt < playbook.max_attempts and incident.status != "resolved"):
            alerts = [a for a in await self.store.alerts_of(incident.incident_id)
                      if a.source == r.target] or await self.store.alerts_of(incident.incident_id)
            await self.store.save_remediation(r)
            await self._decide(incident, alerts[0], r.attempt + 1, now)
            return
        await self.escalate(incident, r.target, why, f"failed:{r.remediation_id}", now)

    def playbook(self, ref: str) -> Playbook | None:
        return next((p for p in self.playbooks.playbooks if p.ref == ref), None)

    async def escalate(self, incident: IncidentRow, target: str, reason: str, key: str,
                       now: int) -> None:
        """Page the on-call engineer once per ``key``."""
        if not await self.store.escalate_once(key, incident.incident_id, now):
            return
        self.publish.alert(escalation_alert(incident, target, reason, key, now))
        await self.note(incident.incident_id, f"escalation:{key}", now, "escalation",
                         {"target": target, "reason": reason})

    async def resolve(self, incident: IncidentRow, recovered_at: int, why: str,
                       now: int) -> None:
        incident.status, incident.resolved_at = "resolved", now
        incident.mttr_ms = max(0, recovered_at - incident.opened_at)
        await self.store.save_incident(incident)
        self.metrics.mttr.observe(incident.mttr_ms / 1000)
        await self.note(incident.incident_id, "resolved", now, "resolved",
                         {"why": why, "mttr_ms": incident.mttr_ms})

    async def note(self, incident: str, key: str, at: int, kind: str,
                    detail: dict[str, Any]) -> None:
        await self.store.flush([TimelineEntry(f"{incident}:{key}", incident, at, kind, detail)])

    async def record_in_cmdb(self, r: RemediationRow, incident: IncidentRow) -> None:
        """The remediation in the target's change history (``dharma cmdb show``)."""
        await self.history.flush([ChangeRow(
            f"healing:{r.remediation_id}", r.finished_ts or incident.resolved_at or 0,
            "remediation", f"remediation:{r.remediation_id}", r.target, r.action,
            {"incident_id": incident.incident_id, "remediation_id": r.remediation_id,
             "playbook": r.playbook, "outcome": r.outcome, "mttr_ms": incident.mttr_ms})])

    async def announce(self, incident: IncidentRow, now: int) -> None:
        """Publish ``incident``'s status now (the seed's lifecycle shows every step, so
        an incident opened and acknowledged at once is announced open first)."""
        self.publish.event(incident_event(incident, now))
        incident.published = incident.status
        await self.store.mark_published([(incident.incident_id, incident.status)], [])

    async def publish_pending(self, now: int) -> None:
        """Publish what was stored and not yet published (the outbox)."""
        incidents, remediations = await self.store.unpublished()
        for incident in incidents:
            self.publish.event(incident_event(incident, now))
        for r in remediations:
            if r.status in ("decided", "started", "succeeded"):
                continue  # not a state of ours to announce
            self.publish.event(remediation_event(r, now))
        await self.store.mark_published(
            [(i.incident_id, i.status) for i in incidents],
            [(r.remediation_id, r.status) for r in remediations if r.status != "decided"])


_SEVERITY = {"info": 0, "warning": 1, "critical": 2}
