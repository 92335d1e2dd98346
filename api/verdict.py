"""Pure parts of the API's access decisions: the request as an access event, and
the decision as an HTTP answer.

The device: a bearer token carries no device posture, and the API will not invent
one, so every API request is decided as coming from an unknown device
(``token:<token_id>``, compliance 0, no encryption, firewall or antivirus, patch
level unknown): the lowest device trust, failing closed.  The API policies
(``agents/trust/policies/40-api.yaml``) therefore ask for roles, a LOW trust band and,
for access decisions, MFA, never device compliance.  The user's facts come from the
token: MFA as issued, last authentication when it was issued.  The source address is
the connection's peer (``X-Forwarded-For`` is not trusted: anyone can write it).
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime
from typing import Any

from fastapi import HTTPException

from dharma.agents.trust.engine import Decision, Verdict
from dharma.agents.trust.models import to_epoch_ms
from dharma.sinks.api_tokens import TokenRow

__all__ = ["UNKNOWN_PEER", "access_event", "answer", "peer_address", "unauthorized"]

#: The source address of a request whose peer is not an IP address (never internal).
UNKNOWN_PEER = "0.0.0.0"  # noqa: S104 - an address recorded, never bound
_CHALLENGE = ('Bearer error="insufficient_user_authentication", '
              'error_description="authenticate with MFA: ask for a token issued with --mfa"')


def peer_address(host: str | None) -> str:
    """The connection's peer as an IP address (:data:`UNKNOWN_PEER` when it is none).

    >>> peer_address("127.0.0.1"), peer_address("testclient"), peer_address(None)
    ('127.0.0.1', '0.0.0.0', '0.0.0.0')
    """
    try:
        return str(ipaddress.ip_address(host or ""))
    except ValueError:
        return UNKNOWN_PEER


def access_event(token: TokenRow, resource: str, source_ip: str, now: datetime) -> dict[str, Any]:
    """The ``audit.logs`` access request an API request stands for (action ``read``)."""
    return {
        "event_id": f"api-{uuid.uuid4().hex}",
        "ts": to_epoch_ms(now),
        "event_type": "access_request",
        "user_id": token.user_id,
        "roles": list(token.roles),
        "resource": resource,
        "action": "read",
        "device": {"device_id": f"token:{token.token_id}", "os": "unknown",
                   "encrypted": False, "firewall": False, "antivirus": False,
                   "compliance_score": 0.0, "patch_level": "unknown"},
        "mfa_enabled": token.mfa,
        "last_auth_ts": to_epoch_ms(token.created_at),
        "source_ip": source_ip,
        "location": None,
        "risk_reason": None,
    }


def unauthorized() -> HTTPException:
    """401 for a missing, malformed, unknown, forged, expired or revoked token: one answer
    for all, so it tells nothing about which."""
    return HTTPException(401, "a valid bearer token is required",
                         headers={"WWW-Authenticate": "Bearer"})


def answer(decision: Decision) -> HTTPException | None:
    """None for an ALLOW; else 401 (CHALLENGE, RFC 9470 step-up) or 403 (DENY, REVOKE)
    carrying the decision, its reasons and policy."""
    if decision.decision is Verdict.ALLOW:
        return None
    verdict = "CHALLENGE" if decision.decision is Verdict.CHALLENGE else "DENY"
    detail = {"decision": verdict, "reasons": list(decision.reasons),
              "policy_id": decision.policy_id}
    if verdict == "CHALLENGE":
        return HTTPException(401, detail, headers={"WWW-Authenticate": _CHALLENGE})
    return HTTPException(403, detail)
