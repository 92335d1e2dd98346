"""An incident's timeline read by people: each entry the healing worker records
(:class:`~dharma.sinks.incident_rows.TimelineEntry`) on one line, and in the few
kinds a timeline view tells apart (root cause, guard, action, verification,
escalation, note, status).
"""

from __future__ import annotations

from string import Formatter
from typing import Any

__all__ = ["VIEW_KINDS", "duration", "one_line", "view_kind"]

_TIMELINE = {
    "alert": "{source} {status} ({severity}, {kind}): {summary}",
    "opened": "root cause {root_cause}, symptoms {symptoms}: {issue_type} "
              "(confidence {confidence})",
    "decision": "{action} on {target} ({playbook}): {status}{guarded}: {reason}",
    "executor": "{remediation_id} {status}: {reason}",
    "approval": "{remediation_id} ({action} on {target}) approved by {by}",
    "verification": "{remediation_id} {result}: {detail}",
    "rollback": "{action} requested to roll back {rollback_of}",
    "escalation": "paged on-call about {target}: {reason}",
    "resolved": "{why} (MTTR {mttr})",
}

#: The kinds of a timeline view.
VIEW_KINDS = ("root_cause", "guard", "action", "verification", "escalation", "note", "status")

_VIEW = {"opened": "root_cause", "executor": "action", "rollback": "action",
         "verification": "verification", "escalation": "escalation", "alert": "note",
         "approval": "note", "resolved": "status", "acknowledged": "status", "open": "status"}


def duration(ms: int | None) -> str:
    """A duration in ms, for people (``-`` for none).

    >>> duration(None), duration(1500), duration(42_300), duration(3_725_000)
    ('-', '1.5s', '42s', '1h02m05s')
    """
    if ms is None:
        return "-"
    if ms < 10_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def one_line(kind: str, detail: dict[str, Any]) -> str:
    """A timeline entry's detail on one line (``key=value`` pairs when it is not the
    shape its kind usually has).

    >>> one_line("decision", {"action": "restart_service", "target": "web-1",
    ...          "playbook": "restart-service@1", "status": "deferred", "guard": "paused",
    ...          "reason": "remediation is paused"})
    'restart_service on web-1 (restart-service@1): deferred [paused]: remediation is paused'
    >>> one_line("resolved", {"why": "every alert ended", "mttr_ms": 65000})
    'every alert ended (MTTR 1m05s)'
    >>> one_line("resolved", {"by": "pager"})
    'by=pager'
    """
    values = {k: "" if v is None else v for k, v in detail.items()}
    values["mttr"] = duration(detail.get("mttr_ms"))
    values["guarded"] = f" [{detail['guard']}]" if detail.get("guard") else ""
    if isinstance(detail.get("symptoms"), list):
        values["symptoms"] = ", ".join(map(str, detail["symptoms"])) or "none"
    template = _TIMELINE.get(kind, "")
    needs = {name for _, name, _, _ in Formatter().parse(template) if name}
    if not template or not needs <= values.keys():
        return ", ".join(f"{k}={v}" for k, v in sorted(detail.items()))
    return " ".join(template.format_map(values).split())


def view_kind(kind: str, detail: dict[str, Any]) -> str:
    """Which of :data:`VIEW_KINDS` a recorded entry is: a decision a guard held back is a
    ``guard``, one that went ahead an ``action``; anything unknown a ``note``.

    >>> view_kind("decision", {"guard": "cooldown"}), view_kind("decision", {"guard": None})
    ('guard', 'action')
    >>> view_kind("opened", {}), view_kind("resolved", {}), view_kind("new-kind", {})
    ('root_cause', 'status', 'note')
    """
    if kind == "decision":
        return "guard" if detail.get("guard") else "action"
    return _VIEW.get(kind, "note")
