"""Security alerts raised by trust decisions (pure: no faust, no I/O).

Three patterns raise an ``alerts.notifications`` record (built by
:func:`dharma.streams.alerting.alert_record`, like every capability's: the
fingerprint of ``(user, "", kind)``, ``status`` firing, the alert id from the
fingerprint, the event's time and id):

* ``access_denied_burst`` (warning): ``BehaviourRules.denial_burst`` or more
  DENYs for one user within ``denial_window_s``.  One alert per *episode*: it
  fires when the burst starts and not again until the user's denials have
  dropped below the threshold (a later decision saw fewer in the window);
* ``impossible_travel`` (critical): the request raised the behaviour signal;
* ``forbidden_probe`` (critical): a forbid policy decided DENY.

The last two fire at most once per user and kind per ``cooldown_s`` (event
time, :func:`~dharma.streams.alerting.cooled_down`).  :class:`AlertMemory` is
the small per-user memory that makes this deduplication survive restarts (the
agent keeps it in a table).

A fourth, ``revalidation_failed`` (critical, :func:`revalidation_alert`), is
raised by the agent when an update could not be applied to live sessions
because the session store stayed unavailable after retries; a fifth,
``state_unavailable`` (critical, :func:`state_unavailable_alert`), once per
user whose behaviour record cannot be read (its requests are denied).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, TypeAdapter

from dharma.agents.trust.behaviour import BehaviourRules, EpochMs, UserBehaviour
from dharma.agents.trust.engine import Decision, Verdict
from dharma.agents.trust.models import AccessEvent
from dharma.streams import alerting
from dharma.streams.alerting import Severity, cooled_down

__all__ = ["COMPONENT", "SEVERITY", "AlertKind", "AlertMemory", "alert_record",
           "revalidation_alert", "security_alerts", "state_unavailable_alert"]

COMPONENT = "trust"

AlertKind = Literal["access_denied_burst", "impossible_travel", "forbidden_probe",
                    "revalidation_failed", "state_unavailable"]

SEVERITY: dict[AlertKind, Severity] = {
    "access_denied_burst": "warning",
    "impossible_travel": "critical",
    "forbidden_probe": "critical",
    "revalidation_failed": "critical",
    "state_unavailable": "critical",
}


@dataclass(frozen=True, slots=True)
class AlertMemory:
    """Per-user alert deduplication: whether a burst episode is open, when each kind last
    fired (validated when read back: known kinds, times an access event may carry)."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    burst_active: bool = False
    last_fired: dict[AlertKind, EpochMs] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for a Faust table): what pydantic's JSON dump gives, built
        directly."""
        return {"burst_active": self.burst_active, "last_fired": dict(self.last_fired)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AlertMemory:
        """Inverse of :meth:`to_dict`, validated (``None``: a fresh state)."""
        return ALERT_STATE_ADAPTER.validate_python(data or {})

    def fired(self, kind: AlertKind, at_ms: int) -> AlertMemory:
        """This state, with ``kind`` fired at ``at_ms``."""
        return AlertMemory(self.burst_active, {**self.last_fired, kind: at_ms})

    def without(self, kind: AlertKind) -> AlertMemory:
        """This state with ``kind`` forgotten (the same object when it never fired)."""
        if kind not in self.last_fired:
            return self
        return AlertMemory(self.burst_active,
                          {k: t for k, t in self.last_fired.items() if k != kind})


#: Validates a stored alert state.
ALERT_STATE_ADAPTER: TypeAdapter[AlertMemory] = TypeAdapter(AlertMemory)


def alert_record(kind: AlertKind, event: AccessEvent, decision: Decision,
                 summary: str) -> dict[str, Any]:
    """An ``alerts.notifications`` record about ``event``'s user."""
    return _firing(kind, event, summary, {
        "resource": event.resource, "action": event.action,
        "decision": decision.decision.value, "policy_id": decision.policy_id or ""})


def revalidation_alert(update: AccessEvent, detail: str) -> dict[str, Any]:
    """A critical alert: ``update`` could not re-evaluate the live sessions it touches."""
    return _firing("revalidation_failed", update,
                   f"{update.event_type} {update.event_id} for {update.user_id} on "
                   f"{update.device.device_id} not applied to live sessions: {detail}",
                   {"event_type": update.event_type})


def state_unavailable_alert(event: AccessEvent, detail: str) -> dict[str, Any]:
    """A critical alert: ``event``'s user has a behaviour record that cannot be read, so
    their requests are denied until it is repaired."""
    return _firing("state_unavailable", event,
                   f"behaviour of {event.user_id} unreadable, requests denied until an operator "
                   f"repairs it: {detail}", {"event_type": event.event_type})


def _firing(kind: AlertKind, event: AccessEvent, summary: str,
            labels: dict[str, str]) -> dict[str, Any]:
    return alerting.alert_record(
        kind=kind, component=COMPONENT, source=event.user_id, subject="", status="firing",
        severity=SEVERITY[kind], summary=summary, ts=event.ts_ms, episode_start=event.ts_ms,
        cause=event.event_id,
        labels={"user_id": event.user_id, "device_id": event.device.device_id,
                "event_id": event.event_id, **labels})


def security_alerts(
    event: AccessEvent,
    decision: Decision,
    before: UserBehaviour,
    after: UserBehaviour,
    state: AlertMemory,
    forbid_ids: frozenset[str],
    rules: BehaviourRules | None = None,
    cooldown_s: int = 600,
    signals: list[str] | None = None,
) -> tuple[list[dict[str, Any]], AlertMemory]:
    """Alerts raised by one decided access request, and the user's new alert state.

    ``before``/``after`` are the user's behaviour around the decision; ``signals``
    are ``before.signals(event)`` when the caller has them.
    """
    rules = rules or BehaviourRules()
    denied = decision.decision is Verdict.DENY
    if signals is None:
        signals = before.signals(event, rules)
    if not (denied or state.burst_active or "impossible_travel" in signals):
        return [], state  # nothing to raise, nothing to close
    now, out = event.ts_ms, []
    fired = dict(state.last_fired)
    window = rules.denial_window_s * 1000
    denials = sum(1 for t in after.denials if 0 <= now - t < window)
    burst = denied and denials >= rules.denial_burst
    if burst and not state.burst_active:
        out.append(alert_record("access_denied_burst", event, decision,
                                f"{denials} access denials for {event.user_id} within "
                                f"{rules.denial_window_s // 60} min"))
        fired["access_denied_burst"] = now
    active = burst or (state.burst_active and denials >= rules.denial_burst)
    candidates: list[tuple[AlertKind, str]] = []
    if "impossible_travel" in signals:
        place = event.location.name if event.location else "unknown"
        candidates.append(("impossible_travel",
                           f"impossible travel for {event.user_id}: request from {place} "
                           f"on {event.device.device_id}"))
    if denied and decision.policy_id in forbid_ids:
        candidates.append(("forbidden_probe",
                           f"{event.user_id} probed forbidden {event.action} on "
                           f"{event.resource} ({decision.policy_id})"))
    for kind, summary in candidates:
        if cooled_down(fired.get(kind), now, cooldown_s * 1000):
            out.append(alert_record(kind, event, decision, summary))
            fired[kind] = now
    if active == state.burst_active and fired == state.last_fired:
        return out, state  # unchanged: the same object, so nothing is written
    return out, AlertMemory(burst_active=active, last_fired=fired)
