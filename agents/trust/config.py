"""Configuration of the trust engine: networks, business hours, bonuses.

Which networks count as internal, when business hours are and how far a
request's own clock is trusted is deployment configuration, not code: the
worker reads it from ``DHARMA_TRUST_*`` (:meth:`TrustConfig.from_settings`).
Business hours are evaluated in ``timezone`` with
:mod:`zoneinfo`, so a request at 14:30 UTC is outside business hours for an
office in Tokyo.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dharma.agents.trust.networks import (
    IPAddress,
    IPNetwork,
    check_cidrs,
    in_networks,
    parse_networks,
)
from dharma.streams.settings import TrustSettings

__all__ = ["TrustConfig"]



class TrustConfig(BaseModel):
    """Settings of the trust engine; every field has a safe default.

    Parameters
    ----------
    internal_networks
        CIDRs whose source addresses earn the internal-network bonus.
    timezone
        IANA zone in which business hours are evaluated.
    business_start, business_end
        Business hours, ``start <= local time < end``.
    business_days
        ISO weekdays (1 = Monday ... 7 = Sunday) that have business hours.
    production_segments
        A resource with any of these path segments is a production resource
        (context trust -10).
    recent_auth_seconds
        Authentication younger than this earns the recent-auth bonus.
    clock_skew_seconds
        How far a clock may run ahead: a request dated more than this after
        the worker's clock is DENY (``clock_skew``), and a ``last_auth_ts``
        later than the request by more than this earns no recency bonus.
    max_request_age_seconds
        A request dated more than this before the worker's clock is DENY
        (``stale_request``).
    allow_ttl_seconds
        ``expires_in`` of an ALLOW decision: the lifetime of its session.
    replay_guard_seconds
        How long the session store remembers that a session was opened or
        revoked, so that a replayed ALLOW cannot open it again; at least
        :attr:`min_replay_guard_seconds` (the default: session lifetime +
        skew).  A request older than a session lifetime is never ALLOWed
        (DENY ``session_expired``), so no session opens for it.
    compromise_hold_seconds
        How long after a risk signal saying the account is compromised
        (``BehaviourRules.compromising_risks``) the user's requests are DENY
        (``account_compromised``).
    patch_bonus
        Device bonus per patch level.
    critical_risks
        ``risk_reason`` values that revoke a live session at once.

    Derived values (zone, parsed networks, memoised answers) are cached on the
    instance: build a new config instead of ``model_copy(update=...)``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    internal_networks: tuple[str, ...] = (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fd00::/8",
    )
    timezone: str = "UTC"
    business_start: time = time(9, 0)
    business_end: time = time(18, 0)
    business_days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    production_segments: frozenset[str] = frozenset({"production", "prod"})
    recent_auth_seconds: int = Field(default=300, ge=0)
    clock_skew_seconds: int = Field(default=30, ge=0)
    max_request_age_seconds: int = Field(default=900, ge=1)
    allow_ttl_seconds: int = Field(default=900, ge=0)
    replay_guard_seconds: int | None = Field(default=None, ge=1)
    compromise_hold_seconds: int = Field(default=86_400, ge=0)
    patch_bonus: dict[str, int] = Field(
        default_factory=lambda: {"latest": 10, "recent": 5, "outdated": 0, "unknown": 0}
    )
    critical_risks: frozenset[str] = frozenset(
        {"credential_leak", "malware_detected", "account_compromise", "session_hijack"}
    )

    _cidrs = field_validator("internal_networks")(check_cidrs)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @classmethod
    def from_settings(cls, trust: TrustSettings) -> TrustConfig:
        """The configuration the worker reads from ``DHARMA_TRUST_*``."""
        start, end = trust.business_hours
        return cls(timezone=trust.timezone, internal_networks=trust.internal_networks,
                   business_start=start, business_end=end, business_days=trust.business_days,
                   clock_skew_seconds=trust.clock_skew_s,
                   max_request_age_seconds=trust.max_request_age_s,
                   allow_ttl_seconds=trust.session_ttl_s,
                   replay_guard_seconds=trust.replay_guard_s,
                   compromise_hold_seconds=trust.compromise_hold_s)

    @model_validator(mode="after")
    def _guard_covers_replays(self) -> TrustConfig:
        guard = self.replay_guard_seconds
        if guard is not None and guard < self.min_replay_guard_seconds:
            raise ValueError(f"replay_guard_seconds {guard} < {self.min_replay_guard_seconds}: "
                             "a replay could open a session again once the guard expired")
        return self

    @property
    def min_replay_guard_seconds(self) -> int:
        """Session lifetime + skew: a request is ALLOWed (and its session opened) only if
        dated at most a session lifetime before the deciding clock (and at most the skew
        after it), so after this no replay of a request can open its session.
        Independent of the request freshness window, however long an operator makes it."""
        return self.allow_ttl_seconds + self.clock_skew_seconds

    @property
    def replay_guard_s(self) -> int:
        """:attr:`replay_guard_seconds`, or its minimum when unset."""
        return self.replay_guard_seconds or self.min_replay_guard_seconds

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        """The internal networks, parsed once."""
        return parse_networks(self.internal_networks)

    @cached_property
    def zone(self) -> ZoneInfo:
        """The business-hours time zone."""
        return ZoneInfo(self.timezone)

    def is_internal(self, ip: IPAddress) -> bool:
        """Return True when ``ip`` lies in one of the internal networks (memoised)."""
        return _in_networks(self.internal_networks, ip)  # CIDR strings hash fast

    def is_business_hours(self, when: datetime) -> bool:
        """Return True when tz-aware ``when`` falls in business hours locally."""
        local = when.astimezone(self.zone)
        if local.isoweekday() not in self.business_days:
            return False
        return self.business_start <= local.time().replace(tzinfo=None) < self.business_end

    def business_hours_at(self, ts_ms: int) -> bool:
        """:meth:`is_business_hours` at epoch ms ``ts_ms``, memoised per minute when
        business hours start and end on whole minutes (then every instant of a minute
        gives the same answer: zone offsets are whole minutes since 1972)."""
        if not self._whole_minutes:
            return self.is_business_hours(_EPOCH + timedelta(milliseconds=ts_ms))
        return self._business_minute(ts_ms // 60_000)

    def is_production(self, resource: str) -> bool:
        """Return True when a path segment of ``resource`` marks production (memoised)."""
        return self._production(resource)

    @cached_property
    def _whole_minutes(self) -> bool:
        return all(t.second == 0 and t.microsecond == 0
                   for t in (self.business_start, self.business_end))

    @cached_property
    def _business_minute(self) -> Callable[[int], bool]:
        def at(minute: int) -> bool:
            return self.is_business_hours(datetime.fromtimestamp(minute * 60, tz=UTC))
        return lru_cache(maxsize=_CACHE_SIZE)(at)

    @cached_property
    def _production(self) -> Callable[[str], bool]:
        segments = self.production_segments
        return lru_cache(maxsize=_CACHE_SIZE)(lambda r: not segments.isdisjoint(r.split("/")))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Entries of each per-config memo.
_CACHE_SIZE = 65_536


@lru_cache(maxsize=65_536)
def _in_networks(cidrs: tuple[str, ...], ip: IPAddress) -> bool:
    return in_networks(ip, parse_networks(cidrs))
