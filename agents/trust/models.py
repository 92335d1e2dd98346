"""Validated access events: the strict shape of an ``audit.logs`` record.

Everything the trust engine reads goes through :func:`parse_access_event`
first.  The model is deliberately strict (no type coercion, bounded lengths,
a closed charset for identifiers and resource paths) so that hostile input is
rejected before any policy sees it: :func:`parse_access_event` raises
:class:`InvalidAccessEvent` (a :class:`~dharma.streams.errors.ContractViolation`,
the one validation protocol of every capability), which the caller dead-letters
or turns into a DENY, never an ALLOW.
"""

from __future__ import annotations

import enum
import ipaddress
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dharma.streams.errors import ContractViolation

__all__ = [
    "AccessEvent",
    "DevicePosture",
    "GeoLocation",
    "InvalidAccessEvent",
    "PatchLevel",
    "as_datetime",
    "epoch_ms_or_none",
    "parse_access_event",
    "parse_access_record",
    "to_epoch_ms",
]

#: Earliest and latest timestamps accepted (epoch ms): 2000-01-01 to 2100-01-01.
_MIN_MS = 946_684_800_000
_MAX_MS = 4_102_444_800_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_DT = _EPOCH + timedelta(milliseconds=_MIN_MS)
_END_DT = _EPOCH + timedelta(milliseconds=_MAX_MS + 1)

_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.:@\-]*$"
_ROLE = r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$"
_ACTION = r"^([a-z][a-z0-9_:\-]*)?$"
#: Resource path: ``/``-separated segments, each starting with a letter, digit
#: or underscore (so ``.`` and ``..`` are impossible); no ``*``, quotes,
#: semicolons, whitespace, backslashes or control characters.
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}"
_RESOURCE = rf"^({_SEGMENT}(/{_SEGMENT}){{0,15}})?$"
_TEXT = r"^[^\x00-\x1f\x7f]*$"


class PatchLevel(enum.StrEnum):
    """How current a device's OS patches are (Avro enum ``PatchLevel``)."""

    LATEST = "latest"
    RECENT = "recent"
    OUTDATED = "outdated"
    UNKNOWN = "unknown"


def to_epoch_ms(value: datetime) -> int:
    """Return a tz-aware datetime as integer milliseconds since the epoch.

    Examples
    --------
    >>> to_epoch_ms(datetime(2025, 12, 8, 14, 30, 15, tzinfo=UTC))
    1765204215000
    """
    return (value - _EPOCH) // timedelta(milliseconds=1)


def epoch_ms_or_none(value: Any) -> int | None:
    """``value`` when it is an epoch-ms integer in the accepted range (2000-2100), else None.

    >>> epoch_ms_or_none(1765204215000), epoch_ms_or_none(2**62), epoch_ms_or_none(True)
    (1765204215000, None, None)
    """
    if isinstance(value, int) and not isinstance(value, bool) and _MIN_MS <= value <= _MAX_MS:
        return value
    return None


def as_datetime(value: Any) -> Any:
    """Turn epoch milliseconds into a UTC datetime; leave anything else alone.

    Booleans are not numbers here, and naive datetimes are left for the model
    to reject.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if not _MIN_MS <= value <= _MAX_MS:
            raise ValueError(f"timestamp {value} ms outside 2000-2100")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    if not _MIN_DT <= value < _END_DT:  # _MIN_MS <= epoch ms <= _MAX_MS
        raise ValueError("timestamp outside 2000-2100")
    return value


def _timestamp(value: Any) -> Any:
    """Epoch ms or a tz-aware datetime in 2000-2100, as a datetime; anything else is
    left for the model to reject (one Python call per field, before pydantic's own)."""
    if isinstance(value, datetime):
        return _aware(value)
    return as_datetime(value)


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=_ID)]
Text = Annotated[str, Field(max_length=128, pattern=_TEXT)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class DevicePosture(_Strict):
    """Posture of the requesting device (Avro record ``DevicePosture``)."""

    device_id: Identifier
    os: Text
    encrypted: bool
    firewall: bool
    antivirus: bool
    compliance_score: Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
    patch_level: Annotated[PatchLevel, Field(strict=False)] = PatchLevel.UNKNOWN

    @field_validator("patch_level", mode="before")
    @classmethod
    def _patch_is_str(cls, value: Any) -> Any:
        if not isinstance(value, str | PatchLevel):
            raise ValueError("patch_level must be a string")
        return value


class GeoLocation(_Strict):
    """Where a request came from (Avro record ``GeoLocation``)."""

    name: Text
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    lat: Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)] | None = None
    lon: Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)] | None = None


class AccessEvent(_Strict):
    """One validated ``audit.logs`` record (Avro record ``AccessEvent``).

    Timestamps are tz-aware datetimes; epoch milliseconds are accepted on
    input.  ``source_ip`` is parsed into an :mod:`ipaddress` object.
    """

    event_id: Identifier
    ts: Timestamp
    event_type: Literal["access_request", "posture_update", "risk_signal"] = "access_request"
    user_id: Identifier
    roles: Annotated[
        tuple[Annotated[str, Field(min_length=1, max_length=64, pattern=_ROLE)], ...],
        Field(max_length=64, strict=False),
    ] = ()
    resource: Annotated[str, Field(max_length=1024, pattern=_RESOURCE)] = ""
    action: Annotated[str, Field(max_length=32, pattern=_ACTION)] = ""
    device: DevicePosture
    mfa_enabled: bool
    last_auth_ts: Timestamp
    source_ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    location: GeoLocation | None = None
    risk_reason: Annotated[str, Field(max_length=64, pattern=_ROLE)] | None = None

    @field_validator("roles", mode="before")
    @classmethod
    def _roles_list(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError("roles must be a list of strings")
        return tuple(value)

    @field_validator("source_ip", mode="before")
    @classmethod
    def _ip_string(cls, value: Any) -> Any:
        if not isinstance(value, str) or len(value) > 45:
            raise ValueError("source_ip must be an IP address string")
        return _parse_ip(value)

    @model_validator(mode="after")
    def _request_fields(self) -> AccessEvent:
        if self.event_type == "access_request" and not (self.resource and self.action):
            raise ValueError("access_request needs a resource and an action")
        return self

    @cached_property
    def ts_ms(self) -> int:
        """Event time in epoch milliseconds."""
        return to_epoch_ms(self.ts)

    @cached_property
    def last_auth_ms(self) -> int:
        """Time of the last authentication in epoch milliseconds."""
        return to_epoch_ms(self.last_auth_ts)

    @cached_property
    def record(self) -> dict[str, Any]:
        """:meth:`to_record`, built once and shared: read it, never modify it."""
        return self.to_record()

    def to_record(self) -> dict[str, Any]:
        """The event as a decoded Avro record (epoch-ms timestamps, str IP); a fresh dict."""
        device, location = self.device, self.location
        return {
            "event_id": self.event_id,
            "ts": self.ts_ms,
            "event_type": self.event_type,
            "user_id": self.user_id,
            "roles": list(self.roles),
            "resource": self.resource,
            "action": self.action,
            "device": {
                "device_id": device.device_id, "os": device.os, "encrypted": device.encrypted,
                "firewall": device.firewall, "antivirus": device.antivirus,
                "compliance_score": device.compliance_score,
                "patch_level": device.patch_level.value,
            },
            "mfa_enabled": self.mfa_enabled,
            "last_auth_ts": to_epoch_ms(self.last_auth_ts),
            "source_ip": _ip_text(self.source_ip),
            "location": None if location is None else {
                "name": location.name, "country": location.country, "lat": location.lat,
                "lon": location.lon},
            "risk_reason": self.risk_reason,
        }


_ip_text = lru_cache(maxsize=65_536)(str)
_RECORD_FIELDS = frozenset(AccessEvent.model_fields)
_DEVICE_FIELDS = frozenset(DevicePosture.model_fields)
_LOCATION_FIELDS = frozenset(GeoLocation.model_fields)


@lru_cache(maxsize=65_536)
def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``ipaddress.ip_address``, memoised (addresses repeat; parsing dominates otherwise)."""
    return ipaddress.ip_address(value)


class InvalidAccessEvent(ContractViolation):
    """A raw record that is not a valid :class:`AccessEvent` (dead-letter it): ``summary``
    says what, ``errors`` which fields and why."""

    def __init__(self, summary: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__("; ".join((summary, *errors))[:2000])
        self.summary, self.errors = summary, errors


def _describe(exc: ValidationError) -> tuple[str, ...]:
    out = []
    for err in exc.errors(include_url=False, include_input=False)[:10]:
        loc = ".".join(str(part) for part in err["loc"]) or "event"
        out.append(f"{loc}: {err['msg']}"[:200])
    return tuple(out)


def parse_access_event(raw: Any) -> AccessEvent:
    """Validate a decoded ``audit.logs`` record.

    Parameters
    ----------
    raw
        A dict shaped like the decoded Avro record (timestamps as epoch ms or
        tz-aware datetimes).  Anything else is rejected.

    Returns
    -------
    AccessEvent
        The validated event.

    Raises
    ------
    InvalidAccessEvent
        Why it is not one (and nothing else).

    Examples
    --------
    >>> try:
    ...     parse_access_event({"event_id": "e1"})
    ... except InvalidAccessEvent as exc:
    ...     print(exc.summary, exc.error_kind, exc.errors[0])
    invalid access event contract_violation ts: Field required
    """
    if isinstance(raw, AccessEvent):
        return raw
    if not isinstance(raw, dict):
        raise InvalidAccessEvent(f"not a record: {type(raw).__name__}")
    try:
        return AccessEvent.model_validate(raw)
    except ValidationError as exc:
        raise InvalidAccessEvent("invalid access event", _describe(exc)) from None
    except (ValueError, TypeError, OverflowError) as exc:  # pragma: no cover - defensive
        raise InvalidAccessEvent(f"invalid access event: {type(exc).__name__}") from None


def parse_access_record(raw: dict[str, Any]) -> AccessEvent:
    """:func:`parse_access_event` for a record decoded with our Avro contract.

    Such a record has every field, in the shape :meth:`AccessEvent.to_record`
    gives; once it validates it is kept as the event's :attr:`~AccessEvent.record`
    instead of being rebuilt (unless its IP address is not in canonical form).
    The caller must not modify ``raw`` afterwards.
    """
    parsed = parse_access_event(raw)
    cached = parsed.__dict__  # what the cached properties would compute, known already
    if type(raw["ts"]) is int:
        cached["ts_ms"] = raw["ts"]
    if type(raw["last_auth_ts"]) is int:
        cached["last_auth_ms"] = raw["last_auth_ts"]
    if _complete(raw) and raw["source_ip"] == _ip_text(parsed.source_ip):
        cached["record"] = raw
    return parsed


def _complete(raw: dict[str, Any]) -> bool:
    if raw.keys() != _RECORD_FIELDS or raw["device"].keys() != _DEVICE_FIELDS:
        return False
    location = raw["location"]
    return location is None or location.keys() == _LOCATION_FIELDS
