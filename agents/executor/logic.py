"""Pure logic of the webhook executor: which ``infrastructure.events`` records are
requests it acts on, whether it runs them, the body it POSTs and the reports it
publishes.

Only a ``remediation`` record with status ``requested`` and ``dry_run`` false is a
request; every other record passes by.  A report has the request's resource and
remediation fields, and an event id drawn from ``(remediation_id, status)``, so
a request seen twice never yields two different reports.

>>> raw = {"event_id": "e1", "ts": 1_000, "type": "remediation", "resource_id": "web-01",
...        "attributes": {"remediation_id": "r1", "action": "restart_service",
...                       "status": "requested", "reason": "memory_leak on web-01",
...                       "parameters": {"metric": "memory_utilization"}}}
>>> request = to_request(raw)
>>> request.target, request.action, refusal(request, now_ms=2_000, max_age_ms=60_000)
('web-01', 'restart_service', None)
>>> refusal(request, now_ms=3_602_000, max_age_ms=3_600_000)
'expired: requested 3601 s ago (max age 3600 s)'
>>> payload(request, "awx")["extra_vars"]["action"], payload(request, "awx")["limit"]
('restart_service', 'web-01')
>>> report(request, "started", "webhook called", 2_000)["event_id"] == \\
...     report(request, "started", "again", 9_000)["event_id"]
True
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter

from dharma.streams.errors import ContractViolation
from dharma.streams.records import Name, checked_name

__all__ = ["ACTIONS", "PayloadStyle", "Request", "payload", "refusal", "report", "report_id",
           "reports", "to_request"]

#: What an executor may be asked to do (the vocabulary of the self-healing loop).
ACTIONS = frozenset({"restart_service", "scale_out", "rollback", "cleanup_disk",
                     "clear_cache", "failover", "notify"})

#: Body shapes: ``generic`` (StackStorm webhooks and most receivers), ``awx`` (a job
#: template's launch), ``rundeck`` (a job's run).
PayloadStyle = Literal["generic", "awx", "rundeck"]

#: Most parameters a request may carry (they are inputs, not a payload).
MAX_PARAMETERS = 32

_NAMESPACE = uuid.UUID("5b0c1a8e-64c4-4c3e-9c53-8f1f6f0a7e21")
_NAME: TypeAdapter[str] = TypeAdapter(Name)


@dataclass(frozen=True)
class Request:
    """A remediation request the executor acts on (the fields of its record)."""

    event_id: str
    ts: int
    target: str
    remediation_id: str
    action: str
    reason: str
    incident_id: str | None = None
    playbook: str | None = None
    risk: str | None = None
    estimated_downtime_s: int | None = None
    attempt: int = 1
    rollback_of: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)

    __pydantic_config__ = ConfigDict(extra="forbid")  # read back from a store: checked

    def to_dict(self) -> dict[str, Any]:
        """Plain data (kept with the execution; :meth:`from_dict` reads it back)."""
        return {**asdict(self), "parameters": dict(self.parameters)}

    @classmethod
    def from_dict(cls, data: Any) -> Request:
        """The request ``data`` holds; ``ValueError`` (pydantic's ``ValidationError``) when
        it holds none: a missing or unknown field, or a value of another type.

        >>> Request.from_dict({"event_id": "e", "ts": "soon"})
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 5 validation errors for Request
        ...
        """
        return _REQUEST.validate_python(data)


_REQUEST: TypeAdapter[Request] = TypeAdapter(Request)


def to_request(raw: Mapping[str, Any], latest: int | None = None) -> Request | None:
    """The request a decoded ``infrastructure.events`` value is (``None``: not one to
    act on); :class:`ContractViolation` when a remediation record is not readable as
    one, or dated after ``latest`` (ms; a request dated ahead would never expire)."""
    if raw["type"] != "remediation":
        return None
    attrs = raw["attributes"]
    if not {"remediation_id", "status", "action"} <= attrs.keys():
        raise ContractViolation(f"remediation event {raw['event_id']} has attributes of "
                                "another type")
    if attrs["status"] != "requested" or attrs.get("dry_run", False):
        return None
    if latest is not None and raw["ts"] > latest:
        raise ContractViolation(f"remediation request {attrs['remediation_id']} is dated "
                                f"{raw['ts'] - latest} ms beyond the worker's clock and skew")
    parameters = dict(attrs.get("parameters") or {})
    if len(parameters) > MAX_PARAMETERS:
        raise ContractViolation(f"{len(parameters)} parameters (at most {MAX_PARAMETERS})")
    return Request(
        raw["event_id"], raw["ts"], checked_name(raw["resource_id"], "resource_id"),
        checked_name(attrs["remediation_id"], "remediation_id"), attrs["action"], attrs["reason"],
        attrs.get("incident_id"), attrs.get("playbook"), attrs.get("risk"),
        attrs.get("estimated_downtime_s"), attrs.get("attempt", 1), attrs.get("rollback_of"),
        parameters)


def refusal(request: Request, now_ms: int, max_age_ms: int) -> str | None:
    """Why ``request`` is not executed (``None``: it is)."""
    if request.action not in ACTIONS:
        return f"refused: unknown action {request.action!r}"
    age = now_ms - request.ts
    if age > max_age_ms:
        return f"expired: requested {age // 1000} s ago (max age {max_age_ms // 1000} s)"
    return None


def payload(request: Request, style: PayloadStyle) -> dict[str, Any]:
    """The JSON body POSTed for ``request``.

    ``generic``: the request's fields at the top (``target`` is the resource), its
    parameters under ``parameters``, and all of them flat under ``extra_vars``;
    ``awx``: ``extra_vars`` and ``limit`` (the target host) only; ``rundeck``: every
    field as a string under ``options``, and the node ``filter``.
    """
    fields = {"action": request.action, "target": request.target,
              "remediation_id": request.remediation_id, "incident_id": request.incident_id,
              "playbook": request.playbook, "risk": request.risk, "attempt": request.attempt,
              "rollback_of": request.rollback_of, "reason": request.reason,
              "estimated_downtime_s": request.estimated_downtime_s}
    flat = {**dict(request.parameters), **fields}
    if style == "awx":
        return {"extra_vars": flat, "limit": request.target}
    if style == "rundeck":
        return {"options": {k: "" if v is None else str(v) for k, v in flat.items()},
                "filter": f"name: {request.target}"}
    return {**fields, "parameters": dict(request.parameters), "extra_vars": flat}


def report_id(remediation_id: str, status: str) -> str:
    """The event id of the ``status`` report of a remediation (the same every time)."""
    return str(uuid.uuid5(_NAMESPACE, f"{remediation_id}\x1f{status}"))


def report(request: Request, status: str, reason: str, ts: int) -> dict[str, Any]:
    """The ``remediation`` record reporting ``status`` of ``request``."""
    return {
        "event_id": report_id(request.remediation_id, status), "ts": ts,
        "type": "remediation", "resource_id": request.target,
        "attributes": {
            "remediation_id": request.remediation_id, "action": request.action,
            "status": status, "reason": reason, "incident_id": request.incident_id,
            "guard": None, "playbook": request.playbook, "risk": request.risk,
            "estimated_downtime_s": request.estimated_downtime_s,
            "attempt": request.attempt, "dry_run": False, "rollback_of": request.rollback_of,
            "parameters": dict(request.parameters)}}


def reports(request: Request, started_ms: int | None, outcome: str | None,
            reason: str | None, finished_ms: int | None) -> list[dict[str, Any]]:
    """The reports an execution has to its name: ``started`` when it was executed, and
    its outcome once known.

    >>> r = Request("e1", 1_000, "web-01", "r1", "notify", "test")
    >>> [x["attributes"]["status"] for x in reports(r, 2_000, "succeeded", "ok", 3_000)]
    ['started', 'succeeded']
    >>> [x["attributes"]["reason"] for x in reports(r, None, "failed", "expired", 2_000)]
    ['expired']
    """
    out = []
    if started_ms is not None:
        out.append(report(request, "started", f"{request.action} started", started_ms))
    if outcome is not None and finished_ms is not None:
        out.append(report(request, outcome, reason or outcome, finished_ms))
    return out
