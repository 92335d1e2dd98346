"""Decoding and validating a batch of ``audit.logs`` (the kernel's
:func:`~dharma.streams.intake.check_events`), and what the trust agent answers
for the records it rejects.

A record that fails (including one whose key is not its ``user_id``: the tables
are keyed, and partitioned, by user) goes to ``audit.logs.dlq`` and, when its
user or event id can be read, is also decided DENY (reasons: the error kind and
the validation errors) and audited, so an enforcement point waiting for it gets
an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from faust.types import EventT

from dharma.agents.trust.engine import TrustEngine, deterministic_id
from dharma.agents.trust.models import AccessEvent, InvalidAccessEvent, parse_access_record
from dharma.agents.trust.pipeline import Accepted, Refused
from dharma.streams.app import StreamContext
from dharma.streams.errors import RejectedEvent
from dharma.streams.intake import check_events
from dharma.streams.topics import AUDIT_LOGS

__all__ = ["InvalidAccessRecord", "MisKeyedRecord", "check_access_events", "refusals",
           "stray_updates"]

logger = logging.getLogger(__name__)

Rejected = list[tuple[EventT, RejectedEvent]]


class InvalidAccessRecord(InvalidAccessEvent):
    """A decoded ``audit.logs`` record that is not a valid access event (kept for its ids)."""

    def __init__(self, raw: dict[str, Any], invalid: InvalidAccessEvent) -> None:
        super().__init__(invalid.summary, invalid.errors)
        self.raw = raw


class MisKeyedRecord(InvalidAccessRecord):
    """A valid event whose key is not its ``user_id``: on another user's partition, it is
    decided against no history and must not write one; kept, since a posture update or
    risk signal still re-evaluates the live sessions it names (it only lowers trust)."""

    def __init__(self, raw: dict[str, Any], event: AccessEvent) -> None:
        super().__init__(raw, InvalidAccessEvent("key is not the record's user_id", (
            "audit.logs records are keyed by their user_id",)))
        self.event = event


def check_access_events(ctx: StreamContext,
                        events: Sequence[EventT]) -> tuple[Accepted, Rejected]:
    """Decode and validate a batch; hostile or malformed records are rejected."""
    def validate(event: EventT, raw: Any) -> AccessEvent:
        try:
            parsed = parse_access_record(raw)
        except InvalidAccessEvent as exc:
            raise InvalidAccessRecord(raw, exc) from None
        if not _keyed_by(ctx, event.message.key, parsed.user_id):
            raise MisKeyedRecord(raw, parsed)
        return parsed

    return check_events(ctx, events, AUDIT_LOGS, validate)


def _keyed_by(ctx: StreamContext, key: bytes | None, user_id: str) -> bool:
    """Whether ``key`` is ``user_id``: our encoding of it (compared as bytes: the usual,
    fast case), or any other writer schema's (decoded)."""
    if key is None:
        return False
    try:
        if key == ctx.wire.encode_key(AUDIT_LOGS.key_subject, user_id):
            return True
    except Exception:  # our key schema not registered yet (registry away): decode instead
        logger.warning("audit.logs key not encoded for comparison", exc_info=True)
    return _key_user(ctx, key) == user_id


def stray_updates(rejected: Rejected) -> Accepted:
    """The posture updates and risk signals among ``rejected`` that only their key broke:
    dead-lettered all the same, they still reach the live sessions they name."""
    return [(event, exc.event) for event, exc in rejected if isinstance(exc, MisKeyedRecord)
            and exc.event.event_type != "access_request"]


def refusals(ctx: StreamContext, engine: TrustEngine, rejected: Rejected) -> Refused:
    """A DENY for each rejected record whose user or event id can be read (from the record,
    or the user from its key); its decision id comes from the record's log position."""
    out: Refused = []
    for event, exc in rejected:
        msg = event.message
        raw = dict(exc.raw) if isinstance(exc, InvalidAccessRecord) else {}
        if not isinstance(raw.get("user_id"), str):
            raw["user_id"] = _key_user(ctx, msg.key)
        if not (raw.get("user_id") or raw.get("event_id")):
            continue
        details = (exc.summary, *exc.errors) if isinstance(
            exc, InvalidAccessRecord) else (exc.reason,)
        decision_id = deterministic_id("invalid", msg.topic, str(msg.partition), str(msg.offset))
        out.append((event, engine.deny_raw(raw, exc.error_kind, *details,
                                           decision_id=decision_id)))
    return out


def _key_user(ctx: StreamContext, key: bytes | None) -> Any:
    try:
        return ctx.wire.decode(AUDIT_LOGS.key_subject, key)
    except Exception:  # an unreadable key names nobody
        return None
