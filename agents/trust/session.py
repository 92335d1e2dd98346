"""Live sessions and their continuous re-evaluation.

An ALLOW opens a :class:`Session` (JSON-serialisable, for Redis or a table).
When a ``posture_update``, ``risk_signal`` or a fresh request about the same
user or device arrives, :func:`revalidate` re-decides the session's request
with the new inputs at the new time:

* a risk_signal whose reason is critical (``TrustConfig.critical_risks``):
  REVOKE at once;
* otherwise the request is re-decided (a non-critical risk first lowers the
  user's historical score): ALLOW keeps the session, CHALLENGE asks for
  step-up, DENY becomes REVOKE;
* an update about another user and device only re-checks the session's
  request at the new time (business hours, recency of authentication).

A fresh access request re-evaluates its user's sessions on its device like a
posture update does (:func:`as_posture_update`) when the posture it reports is
worse, in any component (:func:`posture_of`, :func:`is_worse`), than the one a
session recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, cast

from pydantic import ConfigDict, StrictInt, StrictStr, TypeAdapter

from dharma.agents.trust.behaviour import UserBehaviour
from dharma.agents.trust.config import TrustConfig
from dharma.agents.trust.engine import Decision, TrustEngine, Verdict, with_session
from dharma.agents.trust.models import AccessEvent, InvalidAccessEvent, parse_access_event

__all__ = ["Posture", "Session", "as_posture_update", "is_worse", "posture_of", "revalidate",
           "worst_postures"]

#: A device posture, component by component, each larger = better: compliance,
#: encrypted, firewall, antivirus, patch bonus.
Posture = tuple[float, int, int, int, int]
#: A (user id, device id) pair.
Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Session:
    """A live session opened by an ALLOW decision."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    session_id: StrictStr
    user_id: StrictStr
    device_id: StrictStr
    policy_id: StrictStr | None
    policy_version: StrictStr
    opened_ms: StrictInt
    request: dict[str, Any]

    @classmethod
    def open(cls, decision: Decision, event: AccessEvent,
             request: dict[str, Any] | None = None) -> Session:
        """The session an ALLOW decision opened (``request``: ``event.record`` by default)."""
        if decision.decision is not Verdict.ALLOW or decision.session_id is None:
            raise ValueError("only an ALLOW decision opens a session")
        return cls(decision.session_id, event.user_id, event.device.device_id,
                   decision.policy_id, decision.policy_version, event.ts_ms,
                   request if request is not None else event.record)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``request`` is a decoded Avro record: JSON-ready already)."""
        return {"session_id": self.session_id, "user_id": self.user_id,
                "device_id": self.device_id, "policy_id": self.policy_id,
                "policy_version": self.policy_version, "opened_ms": self.opened_ms,
                "request": self.request}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        """Inverse of :meth:`to_dict`, validated (it comes back from Redis)."""
        return _SESSION.validate_python(data)


_SESSION = TypeAdapter(Session)


def posture_of(device: Mapping[str, Any], config: TrustConfig) -> Posture:
    """The posture of a device record (an ``audit.logs`` ``device``), comparable by
    :func:`is_worse`.

    >>> posture_of({"compliance_score": 95.0, "encrypted": True, "firewall": True,
    ...             "antivirus": False, "patch_level": "latest"}, TrustConfig())
    (95.0, 1, 1, 0, 10)
    """
    return _posture(device["compliance_score"], device["encrypted"], device["firewall"],
                    device["antivirus"], config.patch_bonus.get(device["patch_level"], 0))


@lru_cache(maxsize=4096)
def _posture(compliance: float, encrypted: bool, firewall: bool, antivirus: bool,
             patch_bonus: int) -> Posture:
    """Postures repeat (a device reports the same one request after request)."""
    return (round(float(compliance), 6), int(encrypted), int(firewall), int(antivirus),
            patch_bonus)


def is_worse(posture: Posture, than: Posture) -> bool:
    """True when any component of ``posture`` is below ``than``'s.

    >>> is_worse((95.0, 1, 1, 1, 10), (90.0, 1, 1, 1, 10)), is_worse((99.0, 0, 1, 1, 10),
    ...                                                          (90.0, 1, 1, 1, 10))
    (False, True)
    """
    return any(new < old for new, old in zip(posture, than, strict=True))


def worst_postures(requests: list[AccessEvent], config: TrustConfig) -> dict[Pair, Posture]:
    """The worst posture (component by component) each (user, device) pair reported."""
    worst: dict[Pair, Posture] = {}
    for access in requests:
        pair = (access.user_id, access.device.device_id)
        posture = posture_of(access.record["device"], config)
        seen = worst.get(pair)
        if seen is None:
            worst[pair] = posture
        elif seen != posture:
            worst[pair] = cast(Posture, tuple(map(min, seen, posture)))
    return worst


def as_posture_update(request: AccessEvent) -> dict[str, Any]:
    """An access request read as the posture update it implies for its device."""
    return dict(request.record, event_type="posture_update", resource="", action="")

_REQUEST_FIELDS = ("roles", "mfa_enabled", "last_auth_ts", "source_ip", "location")


def _merged(session: Session, update: AccessEvent, at_ms: int) -> dict[str, Any]:
    new = update.record
    merged = dict(session.request, ts=at_ms, event_id=update.event_id)
    if update.device.device_id == session.device_id:
        merged["device"] = new["device"]
    if update.event_type == "access_request" and update.user_id == session.user_id:
        merged.update({k: new[k] for k in _REQUEST_FIELDS})
    return merged


def revalidate(
    engine: TrustEngine,
    session: Session,
    update: AccessEvent | dict[str, Any],
    behaviour: UserBehaviour | None = None,
    at_ms: int | None = None,
) -> Decision:
    """Re-decide a live session after ``update``: ALLOW (keep), CHALLENGE or REVOKE.

    ``at_ms``: when to re-decide it (default: the update's time).  Never raises; an
    invalid update or any error revokes the session.
    """
    try:
        parsed = parse_access_event(update)
    except InvalidAccessEvent as exc:
        denied = engine.deny_raw(session.request, exc.summary, *exc.errors)
        return with_session(denied, session.session_id, Verdict.REVOKE, denied.event_id)
    behaviour = behaviour or UserBehaviour()
    related = parsed.user_id == session.user_id or parsed.device.device_id == session.device_id
    reasons: list[str] = []
    if related and parsed.event_type == "risk_signal":
        reason = parsed.risk_reason or "unspecified"
        if reason in engine.config.critical_risks:
            denied = engine.deny_raw(session.request, f"critical risk: {reason}")
            return with_session(denied, session.session_id, Verdict.REVOKE, parsed.event_id)
        if parsed.user_id == session.user_id:
            behaviour = behaviour.observe(parsed, "risk", engine.rules)
        reasons.append(f"risk: {reason}")
    at_ms = parsed.ts_ms if at_ms is None else at_ms
    request = _merged(session, parsed, at_ms) if related else dict(session.request, ts=at_ms)
    decision = engine.decide(dict(request, event_type="access_request"), behaviour)
    verdict = Verdict.REVOKE if decision.decision is Verdict.DENY else decision.decision
    restamped = with_session(decision, session.session_id, verdict, parsed.event_id)
    return restamped._replace(reasons=(*reasons, *restamped.reasons)) if reasons else restamped
