"""What happens after a decision, looked at on every tick: deferred and approved
remediations ruled again, leases that ran out, verification windows, incidents whose
alerts all ended, and the outbox.

Verification follows the seed: after the executor's ``succeeded`` (and the
playbook's grace, e.g. the restart's downtime), the verification metric must stay
on the right side of its bound for the whole window, judged on the samples the
ingest topology stored; a passing health check may be required too.  Passed: the
incident is resolved, its MTTR recorded and the remediation written into the
target's CMDB history.  Failed: the playbook's rollback is requested, the on-call
engineer is paged and the incident stays open.  Nothing to watch (``notify``):
the incident stays open until its alerts end or a human resolves it.
"""

from __future__ import annotations

from typing import Any, Literal

from dharma.agents.healing.engine import Healer
from dharma.agents.healing.logic import Outcome, verify
from dharma.agents.healing.state import rollback_row
from dharma.sinks.incidents import IncidentRow, RemediationRow

__all__ = ["FollowUp"]


class FollowUp:
    """The healer's periodic work (see the module docstring)."""

    def __init__(self, healer: Healer) -> None:
        self.healer = healer
        self.store, self.config = healer.store, healer.config

    async def tick(self, now: int) -> None:
        await self.healer.open_due(now)
        unsettled = await self.store.remediations(unsettled=True)
        ids = sorted({r.incident_id for r in unsettled})
        incidents = {i.incident_id: i for i in await self.store.incidents(
            ids=ids, limit=len(ids))} if ids else {}
        for r in unsettled:
            await self._follow(r, incidents[r.incident_id], now)
        await self._resolve_quiet(now)
        self.healer.metrics.incidents_open.set(await self.store.count_live())
        await self.healer.publish_pending(now)

    async def _follow(self, r: RemediationRow, incident: IncidentRow, now: int) -> None:
        healer = self.healer
        if r.status == "decided" or r.status == "deferred" or (
                r.status == "awaiting_approval" and r.approved_by is not None):
            if incident.status == "resolved":
                await self._drop(r, "the incident is resolved")
            else:
                await healer.rule(r, incident, healer.playbook(r.playbook), now,
                                  retry=r.attempt > 1)
        elif r.status in ("requested", "started") and (r.lease_until or now) < now:
            r.status, r.guard, r.outcome = "failed", "lease", "failed"
            r.reason = "no outcome from the executor before its lease ran out"
            healer.metrics.remediations.labels("expired").inc()
            await self.store.save_remediation(r)
            await healer.escalate(incident, r.target, r.reason, f"lease:{r.remediation_id}", now)
        elif r.status == "succeeded" and r.kind == "remediate":
            await self._verify(r, incident, now)

    async def _drop(self, r: RemediationRow, why: str) -> None:
        r.status, r.guard, r.reason = "skipped", "resolved", why
        await self.store.save_remediation(r)

    async def _verify(self, r: RemediationRow, incident: IncidentRow, now: int) -> None:
        outcome = await self._outcome(r, now)
        if outcome is None:
            return
        result, why = outcome
        healer = self.healer
        await healer.note(incident.incident_id, f"verification:{r.remediation_id}", now,
                          "verification", {"remediation_id": r.remediation_id,
                                           "result": result, "detail": why})
        if result == "unverified":  # e.g. notify: a human has it; the alerts' end resolves it
            r.outcome = "unverified"
            healer.metrics.remediations.labels("unverified").inc()
            await self.store.save_remediation(r)
            await healer.record_in_cmdb(r, incident)
            return
        if result == "passed":
            r.outcome = "passed"
            healer.metrics.remediations.labels("verified").inc()
            await self.store.save_remediation(r)
            if incident.status != "resolved":
                await healer.resolve(incident, r.finished_ts or now,
                                     f"{r.action} verified: {why}", now)
            await healer.record_in_cmdb(r, incident)
            return
        r.outcome = "verification_failed"
        healer.metrics.remediations.labels("verification_failed").inc()
        await self.store.save_remediation(r)
        await self._roll_back(r, incident, now)
        incident.annotations = sorted({*incident.annotations,
                                       f"{r.action} did not heal it: {why}"})
        incident.published = None
        await self.store.save_incident(incident)
        await healer.escalate(incident, r.target, f"verification failed after {r.action}: {why}",
                              f"verify:{r.remediation_id}", now)

    async def _outcome(self, r: RemediationRow,
                       now: int) -> tuple[Outcome | Literal["unverified"], str] | None:
        """The verification's result, or ``None`` while its window is still open."""
        v: dict[str, Any] = r.verification
        window = int((self.config.verify_window_s or v.get("window_s") or 300) * 1000)
        grace_s = self.config.verify_grace_s
        grace = int((v.get("grace_s") or 0 if grace_s is None else grace_s) * 1000)
        start = (r.finished_ts or now) + grace
        timed_out = now >= ((r.finished_wall or now) + grace + window
                            + int(self.config.verify_settle_s * 1000))
        results: list[tuple[Outcome, str] | None] = []
        above = v.get("above") is not None
        limit = v.get("above") if above else v.get("below")
        if v.get("metric") and limit is not None:
            series = await self.store.samples(r.target, [v["metric"]], since=start)
            results.append(verify(series.get(v["metric"], []), v["metric"], float(limit),
                                  start, window, timed_out, above=above))
        if v.get("health_check"):
            results.append(await self._health(r.target, start, window, timed_out))
        if not results:
            return "unverified", "the playbook verifies nothing: the incident stays open"
        failed = [x for x in results if x is not None and x[0] == "failed"]
        if failed:
            return failed[0]
        if any(x is None for x in results):
            return None
        return "passed", "; ".join(x[1] for x in results if x is not None)

    async def _health(self, target: str, start: int, window: int,
                      timed_out: bool) -> tuple[Outcome, str] | None:
        ts, passing, last_failing = (await self.store.health([target])).get(
            target, (0, False, None))
        if last_failing is not None and last_failing >= start:
            return "failed", "a health check failed in the window"
        if passing and ts >= start + window:
            return "passed", "health checks passing for the window"
        return ("failed", "no passing health check covering the window") if timed_out else None

    async def _roll_back(self, r: RemediationRow, incident: IncidentRow, now: int) -> None:
        action = r.verification.get("rollback")
        if not action:
            return
        rollback = rollback_row(r, action, now, int(self.config.lease_s * 1000))
        if await self.store.add_remediation(rollback):
            self.healer.metrics.remediations.labels("requested").inc()
            await self.healer.note(incident.incident_id, f"rollback:{rollback.remediation_id}",
                                   now, "rollback", {"remediation_id": rollback.remediation_id,
                                                     "action": action,
                                                     "rollback_of": r.remediation_id})

    async def _resolve_quiet(self, now: int) -> None:
        """Resolve the incidents all of whose alerts ended while nothing was in flight."""
        for incident in await self.store.quiet():
            alerts = await self.store.alerts_of(incident.incident_id)
            if not alerts:
                continue
            for r in await self.store.remediations(incidents=[incident.incident_id],
                                                   unsettled=True):
                await self._drop(r, "the incident's alerts ended")
            await self.healer.resolve(incident, max(a.last_ts for a in alerts),
                                      "every alert of the incident ended", now)
