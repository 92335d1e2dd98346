"""The trust engine: score a request, evaluate policies, decide, fail closed.

Decision semantics, in order:

1. a record that does not validate is DENY (reason: the validation errors);
2. only ``access_request`` events are decided; others are DENY;
3. no policy covering the resource and action: DENY, ``policy_id`` null;
4. an applicable forbid policy: DENY by that policy (overrides permits);
5. a permit whose checks all pass: ALLOW by the most specific such policy,
   cacheable for ``allow_ttl_seconds`` and opening a session;
6. a permit that would pass after step-up (fresh MFA authentication): CHALLENGE;
7. otherwise DENY, naming the most specific permit and its failed checks.

Any exception while deciding is DENY with the exception named: never ALLOW.

Given the deciding clock (``now_ms``, the worker's), an access request dated
more than ``clock_skew_seconds`` ahead of it is DENY ``clock_skew`` and one
older than ``max_request_age_seconds`` is DENY ``stale_request``, before any
policy is read: the request's own time still decides travel and denial
windows, so it must be close to the truth.  Posture and risk events are not
checked (they only ever lower trust).  The facts of *when* a request is made
(business hours, the recency of its authentication, its hour of the day) are
judged at the deciding clock; without one (replays of past records: policy
tests, shadow runs, re-evaluating a session at an update's time), at the
request's own time.

A permit's ALLOW for a request dated more than a session lifetime before the
deciding clock (possible only with a freshness window longer than a session)
is DENY ``session_expired``: its session would be over already.

Before any policy, too: a user whose account a risk signal reported compromised
(:attr:`UserBehaviour.compromised_ms`) is DENY ``account_compromised`` for
``compromise_hold_seconds``; and a device is scored on the worse of the
posture the request claims and the one last reported for it
(:meth:`UserBehaviour.reported_posture`).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import uuid
from typing import Any, NamedTuple

from dharma.agents.trust.behaviour import BehaviourRules, UserBehaviour
from dharma.agents.trust.config import TrustConfig
from dharma.agents.trust.index import PolicySet
from dharma.agents.trust.models import (
    AccessEvent,
    DevicePosture,
    InvalidAccessEvent,
    epoch_ms_or_none,
    parse_access_event,
)
from dharma.agents.trust.policy import (
    CompiledPolicy,
    forbid_applies,
    permit_failures,
    permit_ok,
)
from dharma.agents.trust.scoring import TrustScores, score_event

__all__ = ["ACCOUNT_COMPROMISED", "AUDIT_UNAVAILABLE", "CLOCK_SKEW", "SESSION_EXPIRED",
           "SESSION_REVOKED", "SESSION_UNAVAILABLE", "STALE_REQUEST", "Decision", "TrustEngine",
           "Verdict", "deterministic_id", "fail_closed"]

#: First reason of a DENY taken without weighing the request (a stable code for PEPs).
CLOCK_SKEW = "clock_skew"
STALE_REQUEST = "stale_request"
ACCOUNT_COMPROMISED = "account_compromised"
AUDIT_UNAVAILABLE = "audit_unavailable"
SESSION_UNAVAILABLE = "session_unavailable"
SESSION_REVOKED = "session_revoked"
SESSION_EXPIRED = "session_expired"

log = logging.getLogger(__name__)
_NAMESPACE = uuid.UUID("5b0c6e3e-4d0a-4c59-9a57-6a1f3c0de7a1")
_NAMESPACE_BYTES = _NAMESPACE.bytes


class Verdict(enum.StrEnum):
    """Decision outcomes (Avro enum ``Decision``)."""

    ALLOW = "ALLOW"
    DENY = "DENY"
    CHALLENGE = "CHALLENGE"
    REVOKE = "REVOKE"


#: Order used by the monotonicity properties: DENY < CHALLENGE < ALLOW.
RANK = {Verdict.REVOKE: 0, Verdict.DENY: 0, Verdict.CHALLENGE: 1, Verdict.ALLOW: 2}


def deterministic_id(*parts: str) -> str:
    """A UUID5 from ``parts``: the same input always gives the same id.

    Equal to ``str(uuid.uuid5(_NAMESPACE, "\\x1f".join(parts)))``, without building
    :class:`uuid.UUID` objects (a few microseconds per decision).
    """
    name = _NAMESPACE_BYTES + "\x1f".join(parts).encode()
    digest = bytearray(hashlib.sha1(name, usedforsecurity=False).digest()[:16])  # UUID5 is SHA-1
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


class Decision(NamedTuple):
    """One decision (immutable); :meth:`to_record` gives the Avro ``TrustDecision`` dict.

    A named tuple rather than a frozen dataclass: one is built per request, and a
    frozen dataclass's ``__init__`` costs four times as much.
    """

    decision: Verdict
    event_id: str
    ts_ms: int
    user_id: str
    device_id: str
    resource: str
    action: str
    policy_id: str | None
    policy_version: str
    reasons: tuple[str, ...]
    scores: TrustScores | None = None
    expires_in: int = 0
    session_id: str | None = None
    decision_id: str = ""

    def to_record(self) -> dict[str, Any]:
        """The decision as a ``dharma.predictions.TrustDecision`` record."""
        s = self.scores
        overall, device, user, context = s.floats if s else (0.0, 0.0, 0.0, 0.0)
        return {
            "kind": "trust_decision",
            "decision_id": self.decision_id or deterministic_id("decision", self.event_id),
            "event_id": self.event_id,
            "ts": self.ts_ms,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "resource": self.resource,
            "action": self.action,
            "decision": self.decision.value,
            "trust_score": overall,
            "trust_level": s.level.name if s else "NONE",
            "device_trust": device,
            "user_trust": user,
            "context_trust": context,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "reasons": list(self.reasons),
            "expires_in": self.expires_in,
            "session_id": self.session_id,
        }


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: Any, limit: int) -> str:
    """Echo untrusted text safely: bounded, valid UTF-8, no control characters."""
    if not isinstance(value, str):
        return ""
    clean = value[:limit].encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("\ufffd", clean)


class TrustEngine:
    """Decide access requests against a compiled policy set.

    Parameters
    ----------
    policies
        The compiled, versioned policy set.
    config
        Networks, business hours, bonuses and TTL.
    rules
        The behaviour rule (penalties for this request's signals).
    """

    def __init__(
        self,
        policies: PolicySet,
        config: TrustConfig | None = None,
        rules: BehaviourRules | None = None,
    ) -> None:
        self.policies = policies
        self.config = config or TrustConfig()
        self.rules = rules or BehaviourRules()

    def decide(
        self, event: AccessEvent | dict[str, Any], behaviour: UserBehaviour | None = None,
        signals: list[str] | None = None, now_ms: int | None = None,
    ) -> Decision:
        """Decide one request; never raises and never ALLOWs on error.

        ``signals``: ``behaviour.signals(event)`` when the caller has them already.
        ``now_ms``: the deciding clock; a live decision passes it (see :meth:`untimely`),
        a what-if replay of past records (policy tests, shadow runs, re-evaluating a
        live session at an update's time) does not.
        """
        try:
            parsed = parse_access_event(event)
        except InvalidAccessEvent as exc:
            return self.deny_raw(event, exc.summary, *exc.errors)
        if now_ms is not None:
            late = self.untimely(parsed, now_ms)
            if late is not None:
                return late
        try:
            return self._decide(parsed, behaviour or UserBehaviour(), signals, now_ms)
        except Exception as exc:
            log.exception("trust decision failed event_id=%s", parsed.event_id)
            raw = {"event_id": parsed.event_id, "user_id": parsed.user_id, "ts": parsed.ts_ms}
            return self.deny_raw(raw, f"internal error: {type(exc).__name__}")

    def untimely(self, event: AccessEvent, now_ms: int) -> Decision | None:
        """DENY ``clock_skew`` or ``stale_request`` when an access request's time is too far
        from ``now_ms``; None when it is close enough (or the event is not a request)."""
        if event.event_type != "access_request":
            return None
        config = self.config
        ahead_s, limit = (event.ts_ms - now_ms) / 1000, config.clock_skew_seconds
        if ahead_s > limit:
            return self.refuse(event, CLOCK_SKEW, f"request dated {ahead_s:.0f} s ahead of the "
                               f"deciding clock (at most {limit} s)")
        if -ahead_s > config.max_request_age_seconds:
            return self.refuse(event, STALE_REQUEST, f"request dated {-ahead_s:.0f} s before the "
                               f"deciding clock (at most {config.max_request_age_seconds} s)")
        return None

    def refuse(self, event: AccessEvent, code: str, detail: str) -> Decision:
        """A DENY taken without weighing the request: reasons ``(code, detail)``, its own
        decision id (the event's ordinary decision, if any, keeps its id)."""
        return Decision(
            decision=Verdict.DENY, event_id=event.event_id, ts_ms=event.ts_ms,
            user_id=event.user_id, device_id=event.device.device_id, resource=event.resource,
            action=event.action, policy_id=None, policy_version=self.policies.version,
            reasons=(code, detail), decision_id=deterministic_id("decision", event.event_id, code))

    def deny_raw(self, raw: Any, *reasons: str, decision_id: str | None = None) -> Decision:
        """A DENY for a record that could not be decided (best-effort fields, made safe to
        store and echo); ``decision_id`` defaults to the event id's."""
        raw = raw if isinstance(raw, dict) else {}
        device = raw.get("device") if isinstance(raw.get("device"), dict) else {}
        event_id = _text(raw.get("event_id"), 128) or "unknown"
        return Decision(
            decision=Verdict.DENY,
            event_id=event_id,
            ts_ms=epoch_ms_or_none(raw.get("ts")) or 0,
            user_id=_text(raw.get("user_id"), 128),
            device_id=_text(device.get("device_id"), 128),
            resource=_text(raw.get("resource"), 1024),
            action=_text(raw.get("action"), 32),
            policy_id=None,
            policy_version=self.policies.version,
            reasons=tuple(_text(r, 300) for r in reasons),
            decision_id=decision_id or deterministic_id("decision", event_id),
        )

    def _decide(self, event: AccessEvent, behaviour: UserBehaviour,
                signals: list[str] | None, now_ms: int | None) -> Decision:
        if event.event_type != "access_request":
            return self._make(event, Verdict.DENY, None, None, ["not an access request"])
        held = self._compromised(event, behaviour, now_ms)
        if held is not None:
            return held
        if signals is None:
            signals = behaviour.signals(event, self.rules, now_ms)
        history = behaviour.effective_score(signals, self.rules)
        notes = [f"behaviour: {s}" for s in signals] if signals else []
        device = self._device(event, behaviour, notes)
        scores = score_event(event, history, self.config, at_ms=now_ms, device=device)
        forbids, permits = self.policies.match_split(event.resource, event.action)
        for cp in forbids:
            if forbid_applies(cp, event, scores):
                reason = f"forbidden by {cp.id}: {cp.policy.name}"
                return self._make(event, Verdict.DENY, scores, cp, [reason, *notes])
        if not permits:
            return self._make(event, Verdict.DENY, scores, None, ["no matching policy", *notes])
        for cp in permits:
            if permit_ok(cp, event, scores):
                reason = f"permitted by {cp.id}: {cp.policy.name}"
                return self._allow(event, scores, cp, [reason, *notes], now_ms)
        stepped = score_event(event, history, self.config, step_up=True, at_ms=now_ms,
                              device=device)
        return self._step_up(event, scores, stepped, permits, notes)

    def _compromised(self, event: AccessEvent, behaviour: UserBehaviour,
                     now_ms: int | None) -> Decision | None:
        """DENY ``account_compromised`` while the user's account counts as compromised."""
        until = behaviour.compromised_until(self.config.compromise_hold_seconds)
        if until is None or (event.ts_ms if now_ms is None else now_ms) >= until:
            return None
        return self.refuse(event, ACCOUNT_COMPROMISED, "a risk signal reported the account "
                           f"compromised; requests are denied until {until} (epoch ms)")

    def _device(self, event: AccessEvent, behaviour: UserBehaviour,
                notes: list[str]) -> DevicePosture:
        """The posture to decide on: the worse of the claimed and the reported one."""
        claimed = event.device
        reported = behaviour.reported_posture(claimed.device_id) if behaviour.postures else None
        if reported is None:
            return claimed
        device = reported.worse_of(claimed, self.config.patch_bonus)
        if device is not claimed:
            notes.append(f"posture: as reported at {reported.at_ms}, worse than claimed")
        return device

    def _step_up(
        self,
        event: AccessEvent,
        scores: TrustScores,
        stepped: TrustScores,
        permits: tuple[CompiledPolicy, ...],
        notes: list[str],
    ) -> Decision:
        """CHALLENGE naming a permit that ``stepped`` (the scores after a fresh MFA
        authentication) would satisfy, else DENY naming the most specific permit."""
        for cp in permits:
            if permit_ok(cp, event, stepped):
                why = [f"step-up authentication would satisfy {cp.id}"]
                why += permit_failures(cp, event, scores)
                return self._make(event, Verdict.CHALLENGE, scores, cp, [*why, *notes])
        best = permits[0]
        why = [f"denied by {best.id}: {best.policy.name}", *permit_failures(best, event, scores)]
        return self._make(event, Verdict.DENY, scores, best, [*why, *notes])

    def _allow(self, event: AccessEvent, scores: TrustScores, cp: CompiledPolicy,
               reasons: list[str], now_ms: int | None) -> Decision:
        """ALLOW with a session; DENY ``session_expired`` (the permit's reasons kept after
        it) for a request older than a session lifetime, whose session would be over
        already: no session opens for a request a replay guard of that lifetime does not
        cover, and a replay after its session ended never passes as an ALLOW."""
        allow = self._make(event, Verdict.ALLOW, scores, cp, reasons)
        ttl = self.config.allow_ttl_seconds
        if now_ms is None or now_ms - event.ts_ms <= ttl * 1000:
            return allow
        denied = fail_closed(allow, SESSION_EXPIRED, "the request is older than a session "
                             f"lifetime ({ttl} s): its session would be over")
        return denied._replace(reasons=(*denied.reasons, *reasons))

    def _make(
        self,
        event: AccessEvent,
        verdict: Verdict,
        scores: TrustScores | None,
        cp: CompiledPolicy | None,
        reasons: list[str],
    ) -> Decision:
        allow = verdict is Verdict.ALLOW
        return Decision(
            decision=verdict,
            event_id=event.event_id,
            ts_ms=event.ts_ms,
            user_id=event.user_id,
            device_id=event.device.device_id,
            resource=event.resource,
            action=event.action,
            policy_id=cp.id if cp else None,
            policy_version=self.policies.version,
            reasons=tuple(reasons),
            scores=scores,
            expires_in=self.config.allow_ttl_seconds if allow else 0,
            session_id=deterministic_id("session", event.event_id) if allow else None,
            decision_id=deterministic_id("decision", event.event_id),
        )


def with_session(decision: Decision, session_id: str, verdict: Verdict, event_id: str) -> Decision:
    """Restamp a decision as the re-evaluation of a live session."""
    return decision._replace(
        decision=verdict,
        session_id=session_id,
        event_id=event_id,
        decision_id=deterministic_id("revalidate", session_id, event_id),
    )


def fail_closed(decision: Decision, code: str, detail: str, *distinct: str) -> Decision:
    """``decision`` turned into a DENY ``(code, detail)`` because what it needed (the audit
    trail, the session store) is unavailable or refused it; its own decision id (of the
    event id, the code and ``distinct``), no policy, no session."""
    return decision._replace(
        decision=Verdict.DENY, policy_id=None, reasons=(code, detail), expires_in=0,
        session_id=None,
        decision_id=deterministic_id("decision", decision.event_id, code, *distinct))
