"""The estate as an executor: remediation requests answered tick by tick, an incident
healed only by the action its category names.

A request (an ``infrastructure.events`` ``remediation`` record, status ``requested``)
is reported ``started`` at the next tick and ``succeeded`` after its estimated
downtime (in ticks, capped).  At that tick the right action
(``CATALOGUE[category].remediation``) ends the incident on its resource: the metrics
are back to baseline from there.  Any other action succeeds too (it ran) and heals
nothing; a rollback of an earlier remediation (``rollback_of``) and ``notify`` change
nothing.  Dry-run requests are ignored.  Report ids are drawn from the remediation id
and status, and each remediation id is executed once, so a redelivered request
changes nothing.

>>> from dharma.synthetic.schedule import IncidentConfig, ScriptedIncident
>>> from dharma.synthetic.source import SyntheticSource
>>> leak = ScriptedIncident("memory_leak", "web-server-01", start_tick=0, duration_ticks=10)
>>> src = SyntheticSource(1, 0, incidents=IncidentConfig(
...     incidents_per_day=0, chaos_per_day=0, scripted=(leak,), executor=True))
>>> _ = list(src.ticks(20))                          # past its duration, it persists
>>> src.scheduler.affecting("web-server-01", 20) is not None
True
>>> src.execute(remediation_request("web-server-01", "rem-1", "restart_service"))
>>> [e.value["attributes"]["status"] for b in src.ticks(4) for e in b
...  if e.value.get("type") == "remediation"]
['started', 'succeeded']
>>> src.scheduler.affecting("web-server-01", src.tick) is None
True
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from dharma.synthetic.model import INFRA_TOPIC, Emission
from dharma.synthetic.schedule import IncidentScheduler

__all__ = ["NO_EFFECT_ACTIONS", "EstateExecutor", "remediation_request"]

#: Actions that run and change nothing in the simulated estate.
NO_EFFECT_ACTIONS = frozenset({"notify"})

_NAMESPACE = uuid.UUID("0f3c6a4e-2b8d-4f7a-9e61-5d2c7b9a1e30")


def remediation_request(target: str, remediation_id: str, action: str, *, ts: int = 0,
                        **attrs: Any) -> dict[str, Any]:
    """A ``remediation`` request as a decoded ``infrastructure.events`` value (tests, docs)."""
    return {"event_id": f"req-{remediation_id}", "ts": ts, "type": "remediation",
            "resource_id": target, "attributes": {
                "remediation_id": remediation_id, "action": action, "status": "requested",
                "reason": f"{action} on {target}", "incident_id": None, "guard": None,
                "playbook": None, "risk": None, "estimated_downtime_s": None, "attempt": 1,
                "dry_run": False, "rollback_of": None, "parameters": {}, **attrs}}


class EstateExecutor:
    """Answers remediation requests for the estate a scheduler overlays incidents on.

    Parameters
    ----------
    scheduler
        The source's incidents (what a remediation heals).
    interval_ms
        Simulated time per tick (to turn an estimated downtime into ticks).
    max_downtime_ticks
        Longest time between ``started`` and ``succeeded``, in ticks.
    """

    def __init__(self, scheduler: IncidentScheduler, interval_ms: int,
                 max_downtime_ticks: int = 3) -> None:
        self.scheduler, self.interval_ms = scheduler, interval_ms
        self.max_downtime_ticks = max(1, max_downtime_ticks)
        self.handled: set[str] = set()
        self.pending: dict[int, list[tuple[dict[str, Any], str]]] = {}

    def execute(self, request: dict[str, Any], tick: int) -> None:
        """Queue the reports of ``request`` from ``tick`` on (requests that are not
        ``requested``, dry runs and remediation ids seen before are ignored)."""
        attrs = request.get("attributes") or {}
        if request.get("type") != "remediation" or attrs.get("status") != "requested" \
                or attrs.get("dry_run") or attrs.get("remediation_id") in self.handled:
            return
        self.handled.add(attrs["remediation_id"])
        if request["resource_id"] not in self.scheduler.resources:
            self._queue(tick, request, "failed", "no such resource in the estate")
            return
        self._queue(tick, request, "started", f"{attrs['action']} started")
        self._queue(tick + self._downtime_ticks(attrs.get("estimated_downtime_s")), request,
                    "succeeded", "")

    def step(self, tick: int) -> list[Emission]:
        """The reports due at ``tick``; a ``succeeded`` one heals what its action heals."""
        out = []
        for request, status in self.pending.pop(tick, []):
            attrs = request["attributes"]
            reason = attrs["reason"] if status != "succeeded" else self._run(request, tick)
            out.append(self._report(request, status, reason, tick))
        return out

    def _run(self, request: dict[str, Any], tick: int) -> str:
        """Apply a finished action; what it did, in words."""
        attrs, target = request["attributes"], request["resource_id"]
        action = attrs["action"]
        if attrs.get("rollback_of") or action in NO_EFFECT_ACTIONS:
            return f"{action} ran on {target}: nothing changed"
        healed = self.scheduler.heal(target, action, tick)
        if healed is None:
            return f"{action} ran on {target}: no incident it heals"
        return f"{action} ran on {target}: {healed.category} {healed.incident_id} healed"

    def _downtime_ticks(self, downtime_s: int | None) -> int:
        ticks = math.ceil((downtime_s or 0) * 1000 / self.interval_ms)
        return min(max(1, ticks), self.max_downtime_ticks)

    def _queue(self, tick: int, request: dict[str, Any], status: str, reason: str) -> None:
        attrs = {**request["attributes"], "reason": reason or request["attributes"]["reason"]}
        self.pending.setdefault(tick, []).append(({**request, "attributes": attrs}, status))

    def _report(self, request: dict[str, Any], status: str, reason: str, tick: int) -> Emission:
        attrs = request["attributes"]
        report = {**attrs, "status": status, "reason": reason, "guard": None,
                  "dry_run": False, "parameters": dict(attrs.get("parameters") or {})}
        event_id = str(uuid.uuid5(_NAMESPACE, f"{attrs['remediation_id']}\x1f{status}"))
        value = {"event_id": event_id, "ts": self.scheduler.ts(tick), "type": "remediation",
                 "resource_id": request["resource_id"], "attributes": report}
        return Emission(INFRA_TOPIC, request["resource_id"], value)
