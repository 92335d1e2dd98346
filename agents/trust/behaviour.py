"""Per-user behaviour: the historical score and the bounded memory behind it.

The agent keeps one :class:`UserBehaviour` per user in a table; it is a
frozen, JSON-serialisable value (:meth:`UserBehaviour.to_dict` /
:meth:`UserBehaviour.from_dict`) and :meth:`UserBehaviour.observe` returns a
new one.  The rule (all numbers are :class:`BehaviourRules` arguments):

* a new user starts at 50;
* on each access request, a *new device* (the user has known devices and this
  is not one of them) costs 10, *impossible travel* (>= 100 km from the
  last allowed located request at more than 900 km/h) costs 25, an *unusual hour*
  (after 20 allowed requests, an hour of day holding < 2 % of them) costs 5;
* a DENY while 5 or more DENYs fall within 10 minutes costs 5 each;
* a risk_signal about the user costs 20; one that says the account itself is
  compromised (``BehaviourRules.compromising_risks``: ``account_compromise``,
  ``credential_leak``, ``session_hijack``) also sets :attr:`UserBehaviour.compromised_ms`,
  and the engine denies the user's requests for a while after it;
* a posture_update is remembered per device (:class:`ReportedPosture`, the
  newest report of each of the user's last 10 reported devices): the engine
  decides a request from that device on the worse of the claimed and the
  reported posture, component by component;
* a clean ALLOW (no signal) earns 0.5, at most once a minute.

Hours of the day (the *unusual hour* signal, and the histogram it reads) are
those of the deciding clock when there is one (``at_ms``), so a backdated
request cannot pick its hour.

Only an ALLOWed request teaches what is usual: its device becomes known, its
location the last one, its hour counted.  A DENY or CHALLENGE never does, so a
refused request from an unknown device (or place, or hour) cannot make the
next one look familiar.

A record replayed after a restart (its (partition, offset) at or before
:attr:`UserBehaviour.last_seen`) is decided again but not observed again; so is
a duplicate at another offset (a producer's retry: the same event id, among the
user's last :data:`MAX_RECENT_IDS` events observed, :attr:`UserBehaviour.recent_ids`).

Memory per user is bounded: at most 10 known devices (least recently used
evicted), a 24-bin hour histogram (halved beyond 1,000), the last located
request and at most 32 recent denial times.

A behaviour read back from a table is validated strictly
(:meth:`UserBehaviour.from_dict`, or JSON through
:class:`~dharma.streams.checkpoint.TypedTable`): no type coercion, no NaN,
every number in its range (a score of 0-100, coordinates on the globe, times
an access event may carry, at most :data:`MAX_DEVICES` devices and
:data:`MAX_DENIALS` denial times, 24 hour bins), and a location with all three
of its fields or none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from dharma.agents.trust.models import (
    AccessEvent,
    DevicePosture,
    Identifier,
    PatchLevel,
    to_epoch_ms,
)

__all__ = ["MAX_DENIALS", "MAX_DEVICES", "MAX_RECENT_IDS", "BehaviourRules", "ReportedPosture",
           "UserBehaviour", "haversine_km"]

#: Most devices a behaviour may remember (``BehaviourRules.max_devices`` is at most this).
MAX_DEVICES = 100
#: Most recent denial times a behaviour keeps.
MAX_DENIALS = 32
#: Event ids of a user's latest events a behaviour remembers: a producer's retried
#: duplicate follows its original closely on the user's partition.
MAX_RECENT_IDS = 32

#: A time a behaviour may hold: one an access event may carry (2000-2100, epoch ms).
EpochMs = Annotated[int, Field(ge=to_epoch_ms(datetime(2000, 1, 1, tzinfo=UTC)),
                               le=to_epoch_ms(datetime(2100, 1, 1, tzinfo=UTC)))]
Count = Annotated[int, Field(ge=0, le=10**12)]
PatchName = Literal["latest", "recent", "outdated", "unknown"]


class _Decided(Protocol):
    @property
    def decision(self) -> str: ...


class BehaviourRules(BaseModel):
    """Penalties, rewards and thresholds of the behaviour rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_score: float = 50.0
    new_device_penalty: float = 10.0
    travel_penalty: float = 25.0
    travel_speed_kmh: float = 900.0
    travel_min_km: float = 100.0
    unusual_hour_penalty: float = 5.0
    unusual_hour_min_events: int = 20
    unusual_hour_share: float = 0.02
    denial_window_s: int = 600
    denial_burst: int = 5
    denial_penalty: float = 5.0
    risk_penalty: float = 20.0
    compromising_risks: frozenset[str] = frozenset(
        {"account_compromise", "credential_leak", "session_hijack"})
    clean_credit: float = 0.5
    credit_interval_s: int = 60
    max_devices: Annotated[int, Field(ge=1, le=MAX_DEVICES)] = 10
    hour_cap: int = 1000


DEFAULT_RULES = BehaviourRules()


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km.

    Examples
    --------
    >>> round(haversine_km(48.8566, 2.3522, 51.5074, -0.1278))
    344
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def _utc_hour(ts_ms: int) -> int:
    return ts_ms // 3_600_000 % 24


@dataclass(frozen=True, slots=True)
class ReportedPosture:
    """The posture a ``posture_update`` (the MDM) last reported for one of the user's
    devices, and when (the update's time)."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid", allow_inf_nan=False)

    device_id: Identifier
    at_ms: EpochMs
    compliance_score: Annotated[float, Field(ge=0, le=100)]
    encrypted: bool
    firewall: bool
    antivirus: bool
    patch_level: PatchName

    @classmethod
    def of(cls, event: AccessEvent, at_ms: int | None = None) -> ReportedPosture:
        """What ``event`` (a posture update) reports, dated at the update's time, or at the
        deciding clock ``at_ms`` if it claims a later one (a report dated in the future
        must not outrank the next real one)."""
        d = event.device
        when = event.ts_ms if at_ms is None else min(event.ts_ms, at_ms)
        return cls(d.device_id, when, d.compliance_score, d.encrypted, d.firewall,
                   d.antivirus, d.patch_level.value)

    def worse_of(self, claimed: DevicePosture, patch_bonus: dict[str, int]) -> DevicePosture:
        """The worse of ``claimed`` and this report, component by component (``claimed``
        itself when it is no better anywhere).

        >>> report = ReportedPosture("d1", 946_684_800_000, 10.0, False, True, True, "latest")
        >>> claim = DevicePosture(device_id="d1", os="x", encrypted=True, firewall=True,
        ...                       antivirus=False, compliance_score=95.0, patch_level="recent")
        >>> worse = report.worse_of(claim, {"latest": 10, "recent": 5})
        >>> (worse.compliance_score, worse.encrypted, worse.antivirus, worse.patch_level.value)
        (10.0, False, False, 'recent')
        """
        patch = claimed.patch_level.value
        if patch_bonus.get(self.patch_level, 0) < patch_bonus.get(patch, 0):
            patch = self.patch_level
        worse = (min(claimed.compliance_score, self.compliance_score),
                 claimed.encrypted and self.encrypted, claimed.firewall and self.firewall,
                 claimed.antivirus and self.antivirus, patch)
        if worse == (claimed.compliance_score, claimed.encrypted, claimed.firewall,
                     claimed.antivirus, claimed.patch_level.value):
            return claimed
        return DevicePosture(device_id=claimed.device_id, os=claimed.os,
                             compliance_score=worse[0], encrypted=worse[1], firewall=worse[2],
                             antivirus=worse[3], patch_level=PatchLevel(worse[4]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"device_id": self.device_id, "at_ms": self.at_ms,
                "compliance_score": self.compliance_score, "encrypted": self.encrypted,
                "firewall": self.firewall, "antivirus": self.antivirus,
                "patch_level": self.patch_level}


def _clamp(value: float) -> float:
    return round(min(100.0, max(0.0, value)), 2)


@dataclass(frozen=True, slots=True)
class UserBehaviour:
    """Historical behaviour of one user (score 0-100 and bounded memory).

    A slotted dataclass, not a pydantic model: one is built per request.  What
    comes back from a table is validated (pydantic, through the field annotations
    and the location check below; construction in code does not validate).
    """

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid", allow_inf_nan=False)

    score: Annotated[float, Field(ge=0, le=100)] = DEFAULT_RULES.default_score
    known_devices: Annotated[tuple[Identifier, ...], Field(max_length=MAX_DEVICES)] = ()
    hours: Annotated[tuple[Count, ...], Field(min_length=24, max_length=24)] = (0,) * 24
    last_lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    last_lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    last_located_ms: EpochMs | None = None
    denials: Annotated[tuple[EpochMs, ...], Field(max_length=MAX_DENIALS)] = ()
    last_credit_ms: EpochMs | None = None
    events: Count = 0
    #: (partition, offset) of the last ``audit.logs`` record observed: a record
    #: replayed after a restart, at or before it, is not counted again
    last_seen: tuple[Count, Count] | None = None
    #: when the worker learnt of the last risk signal saying the account is compromised
    compromised_ms: EpochMs | None = None
    #: the newest posture reported for each of the user's last reported devices
    postures: Annotated[tuple[ReportedPosture, ...], Field(max_length=MAX_DEVICES)] = ()
    #: ids of the last events observed: a duplicate at another offset is not counted again
    recent_ids: Annotated[tuple[Identifier, ...], Field(max_length=MAX_RECENT_IDS)] = ()

    @model_validator(mode="after")
    def _located_or_not(self) -> UserBehaviour:
        """The last location has all of latitude, longitude and time, or none."""
        if len({self.last_lat is None, self.last_lon is None, self.last_located_ms is None}) > 1:
            raise ValueError("last_lat, last_lon and last_located_ms go together")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for a Faust table); what pydantic's JSON dump gives, built
        directly (one per user and batch)."""
        return {"score": self.score, "known_devices": list(self.known_devices),
                "hours": list(self.hours), "last_lat": self.last_lat, "last_lon": self.last_lon,
                "last_located_ms": self.last_located_ms, "denials": list(self.denials),
                "last_credit_ms": self.last_credit_ms, "events": self.events,
                "last_seen": None if self.last_seen is None else list(self.last_seen),
                "compromised_ms": self.compromised_ms,
                "postures": [p.to_dict() for p in self.postures],
                "recent_ids": list(self.recent_ids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserBehaviour:
        """Inverse of :meth:`to_dict`, validated (unknown keys, NaN, and numbers out of
        their range are errors; lists become tuples)."""
        return BEHAVIOUR_ADAPTER.validate_python(data)

    def signals(self, event: AccessEvent, rules: BehaviourRules = DEFAULT_RULES,
                at_ms: int | None = None) -> list[str]:
        """Behaviour signals raised by ``event`` (new_device, impossible_travel, unusual_hour;
        the hour is ``at_ms``'s, the deciding clock, when given)."""
        out = []
        if self.known_devices and event.device.device_id not in self.known_devices:
            out.append("new_device")
        if self._impossible_travel(event, rules):
            out.append("impossible_travel")
        total = sum(self.hours)
        hour = _utc_hour(event.ts_ms if at_ms is None else at_ms)
        if (
            total >= rules.unusual_hour_min_events
            and self.hours[hour] < rules.unusual_hour_share * total
        ):
            out.append("unusual_hour")
        return out

    def has_seen(self, position: tuple[int, int], event_id: str | None = None) -> bool:
        """Whether the record at ``(partition, offset)`` is already counted (a replay), or
        event ``event_id`` (a duplicate at another offset)."""
        last = self.last_seen
        if last is not None and last[0] == position[0] and position[1] <= last[1]:
            return True
        return event_id is not None and event_id in self.recent_ids

    def reported_posture(self, device_id: str) -> ReportedPosture | None:
        """The posture last reported for ``device_id``, if any."""
        for posture in self.postures:
            if posture.device_id == device_id:
                return posture
        return None

    def compromised_until(self, hold_s: int) -> int | None:
        """Until when (epoch ms) the account counts as compromised, if it was reported so."""
        return None if self.compromised_ms is None else self.compromised_ms + hold_s * 1000

    def effective_score(self, signals: list[str], rules: BehaviourRules = DEFAULT_RULES) -> float:
        """Historical score after this request's signals (what the decision uses)."""
        if not signals:
            return self.score  # kept clamped and rounded
        return _clamp(self.score - _penalty(signals, rules))

    def _impossible_travel(self, event: AccessEvent, rules: BehaviourRules) -> bool:
        loc = event.location
        if loc is None or loc.lat is None or loc.lon is None or self.last_located_ms is None:
            return False
        assert self.last_lat is not None and self.last_lon is not None
        km = haversine_km(self.last_lat, self.last_lon, loc.lat, loc.lon)
        hours = abs(event.ts_ms - self.last_located_ms) / 3_600_000
        return km >= rules.travel_min_km and (hours == 0 or km / hours > rules.travel_speed_kmh)

    def observe(
        self, event: AccessEvent, decision: str | _Decided, rules: BehaviourRules = DEFAULT_RULES,
        signals: list[str] | None = None, position: tuple[int, int] | None = None,
        at_ms: int | None = None,
    ) -> UserBehaviour:
        """Return the behaviour after ``event`` was decided as ``decision``
        (``signals``: :meth:`signals` of ``event``, when the caller has them;
        ``position``: the record's (partition, offset), kept as :attr:`last_seen`;
        ``at_ms``: the deciding clock, if any)."""
        seen = self.last_seen if position is None else position
        if event.event_type != "access_request":
            return replace(self._updated(event, rules, seen, at_ms),
                           recent_ids=_recent(self.recent_ids, event.event_id))
        outcome = str(getattr(decision, "decision", decision))
        sigs = self.signals(event, rules, at_ms) if signals is None else signals
        now = event.ts_ms
        loc = event.location
        allowed = outcome == "ALLOW"  # what a refused request claims is not learnt
        lat: float | None
        lon: float | None
        located: int | None
        if allowed and loc is not None and loc.lat is not None and loc.lon is not None:
            lat, lon, located = loc.lat, loc.lon, now
        else:
            lat, lon, located = self.last_lat, self.last_lon, self.last_located_ms
        score = self.score - _penalty(sigs, rules)
        denials, credited = self.denials, self.last_credit_ms
        if outcome == "DENY":
            recent = tuple(t for t in denials if now - t < rules.denial_window_s * 1000)
            denials = (*recent, now)[-MAX_DENIALS:]
            if len(denials) >= rules.denial_burst:
                score -= rules.denial_penalty
        elif allowed and not sigs and self._may_credit(now, rules):
            score += rules.clean_credit
            credited = now
        devices, hours = self.known_devices, self.hours
        if allowed:
            devices = _remember(devices, event.device.device_id, rules)
            hours = _count_hour(hours, _utc_hour(now if at_ms is None else at_ms), rules)
        return UserBehaviour(_clamp(score), devices, hours, lat, lon, located, denials, credited,
                             self.events + 1, seen, self.compromised_ms, self.postures,
                             _recent(self.recent_ids, event.event_id))

    def _updated(self, event: AccessEvent, rules: BehaviourRules, seen: tuple[int, int] | None,
                 at_ms: int | None) -> UserBehaviour:
        """After a posture update (its posture remembered) or a risk signal (its penalty; a
        compromised account marked from when the worker learnt it, ``at_ms``)."""
        if event.event_type == "posture_update":
            report = ReportedPosture.of(event, at_ms)
            return replace(self, postures=_report(self.postures, report, rules), last_seen=seen)
        if event.event_type != "risk_signal":
            return replace(self, last_seen=seen)
        compromised = self.compromised_ms
        if event.risk_reason in rules.compromising_risks:
            since = event.ts_ms if at_ms is None else at_ms
            compromised = since if compromised is None else max(compromised, since)
        return replace(self, score=_clamp(self.score - rules.risk_penalty), last_seen=seen,
                       compromised_ms=compromised)

    def _may_credit(self, now_ms: int, rules: BehaviourRules) -> bool:
        last = self.last_credit_ms
        return last is None or now_ms - last >= rules.credit_interval_s * 1000


#: Validates a stored behaviour (lax: JSON lists become tuples).
BEHAVIOUR_ADAPTER: TypeAdapter[UserBehaviour] = TypeAdapter(UserBehaviour)


def _penalty(signals: list[str], rules: BehaviourRules) -> float:
    if not signals:
        return 0.0
    table = {
        "new_device": rules.new_device_penalty,
        "impossible_travel": rules.travel_penalty,
        "unusual_hour": rules.unusual_hour_penalty,
    }
    return sum(table.get(s, 0.0) for s in signals)


def _recent(ids: tuple[str, ...], event_id: str) -> tuple[str, ...]:
    return ids if event_id in ids else (*ids, event_id)[-MAX_RECENT_IDS:]


def _remember(devices: tuple[str, ...], device: str, rules: BehaviourRules) -> tuple[str, ...]:
    if devices and devices[-1] == device:
        return devices  # the usual case: the device of the user's previous request
    kept = tuple(d for d in devices if d != device)
    return (*kept, device)[-rules.max_devices :]


def _report(postures: tuple[ReportedPosture, ...], report: ReportedPosture,
            rules: BehaviourRules) -> tuple[ReportedPosture, ...]:
    """``postures`` with ``report`` as its device's, unless an older update is replayed
    over a newer one (the most recently reported devices kept)."""
    others = []
    for posture in postures:
        if posture.device_id != report.device_id:
            others.append(posture)
        elif posture.at_ms > report.at_ms:
            return postures  # an older report does not override a newer one
    return (*others, report)[-rules.max_devices:]


def _count_hour(hours: tuple[int, ...], hour: int, rules: BehaviourRules) -> tuple[int, ...]:
    counts = list(hours) if len(hours) == 24 else [0] * 24
    counts[hour] += 1
    if sum(counts) > rules.hour_cap:
        counts = [c // 2 for c in counts]
    return tuple(counts)
