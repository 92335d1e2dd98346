"""Access requests, posture updates and risk signals for ``audit.logs``.

Most requests are normal (office hours, 10.x addresses, compliant encrypted
devices, MFA, authentication minutes ago). A ``risky_fraction`` of them carries
one injected risk; devices whose posture was degraded by a ``posture_update``
stay risky until a later update restores them. :class:`AccessTruth` records the
risks each request really carries, derived from its final fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dharma.synthetic.model import (
    AUDIT_TOPIC,
    HOUR_MS,
    Emission,
    derive_rng,
    new_id,
    poisson,
)
from dharma.synthetic.users import (
    FAR_CITIES,
    FORBIDDEN,
    User,
    external_ip,
    make_users,
)

INJECTED_RISKS = (
    "unencrypted_device",
    "low_compliance",
    "no_mfa",
    "stale_auth",
    "external_ip",
    "impossible_travel",
    "forbidden_probe",
)
RISK_REASONS = ("credential_leak", "malware_detected", "anomalous_download", "session_hijack")


@dataclass(frozen=True)
class AccessConfig:
    """Volume and mix of ``audit.logs`` events.

    Parameters
    ----------
    users
        Number of users, the seed persona ``admin_user_001`` included.
    requests_per_tick
        Expected access requests per tick at peak office activity.
    risky_fraction
        Probability that a request carries an injected risk.
    posture_updates_per_tick, risk_signals_per_tick
        Expected posture degradations and risk signals per tick.
    """

    users: int = 25
    requests_per_tick: float = 0.8
    risky_fraction: float = 0.1
    posture_updates_per_tick: float = 0.01
    risk_signals_per_tick: float = 0.004


@dataclass(frozen=True)
class AccessTruth:
    """What an ``audit.logs`` event really is: its risks (empty when benign)."""

    event_id: str
    user_id: str
    ts: int
    event_type: str
    risks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "ts": self.ts,
            "event_type": self.event_type,
            "risks": list(self.risks),
        }


def hour_of_day(ts: int, day_length_ms: int) -> float:
    """Simulated hour (0-24) of ``ts`` for a day of ``day_length_ms`` (UTC for a real day)."""
    return (ts % day_length_ms) / day_length_ms * 24


def office_activity(hour: float) -> float:
    """Relative request volume: full in office hours, low at night."""
    if 9 <= hour < 18:
        return 1.0
    if 7 <= hour < 9 or 18 <= hour < 21:
        return 0.45
    return 0.06


def derive_risks(value: dict[str, Any], injected: set[str], day_length_ms: int) -> tuple[str, ...]:
    """Risks visible in an access event's fields, plus the contextual injected ones."""
    device, ts = value["device"], value["ts"]
    risks = {r for r in injected if r in ("impossible_travel", "forbidden_probe")}
    if not device["encrypted"]:
        risks.add("unencrypted_device")
    if device["compliance_score"] < 70:
        risks.add("low_compliance")
    if not value["mfa_enabled"]:
        risks.add("no_mfa")
    if ts - value["last_auth_ts"] > HOUR_MS:
        risks.add("stale_auth")
    if not value["source_ip"].startswith("10."):
        risks.add("external_ip")
    hour = hour_of_day(ts, day_length_ms)
    if hour < 6 or hour >= 22:
        risks.add("night_time")
    return tuple(sorted(risks))


class AccessSimulator:
    """Generates ``audit.logs`` emissions tick by tick (see module docstring)."""

    def __init__(
        self, config: AccessConfig, seed: int, day_length_ms: int, interval_ms: int
    ) -> None:
        self.config = config
        self.rng = derive_rng(seed, "access")
        self.users = make_users(derive_rng(seed, "users"), max(1, config.users))
        self.day_length_ms, self.interval_ms = day_length_ms, interval_ms
        self.truth: list[AccessTruth] = []

    def step(self, tick: int, ts: int) -> list[Emission]:
        """Every ``audit.logs`` event of the interval ending at ``ts``, in time order."""
        rng, cfg = self.rng, self.config
        out: list[Emission] = []
        if tick == 0:  # the seed's canonical request opens every run
            out.append(self._request(self.users[0], ts, set(), canonical=True))
        out.extend(self._restore_postures(tick, ts))
        activity = office_activity(hour_of_day(ts, self.day_length_ms))
        for _ in range(poisson(rng, cfg.requests_per_tick * activity)):
            at = ts - rng.randrange(self.interval_ms)
            risky = rng.random() < cfg.risky_fraction
            injected = {rng.choice(INJECTED_RISKS)} if risky else set()
            out.append(self._request(rng.choice(self.users), at, injected))
        if rng.random() < cfg.posture_updates_per_tick:
            out.extend(self._degrade(tick, ts - rng.randrange(self.interval_ms)))
        if rng.random() < cfg.risk_signals_per_tick:
            out.append(self._risk_signal(ts - rng.randrange(self.interval_ms)))
        return sorted(out, key=lambda e: e.value["ts"])

    def _base(self, user: User, ts: int, event_type: str) -> dict[str, Any]:
        return {
            "event_id": new_id(self.rng),
            "ts": ts,
            "event_type": event_type,
            "user_id": user.user_id,
            "roles": list(user.roles),
            "resource": "",
            "action": "",
            "device": dict(user.device),
            "mfa_enabled": True,
            "last_auth_ts": ts - self.rng.randint(30_000, 900_000),
            "source_ip": user.ip,
            "location": dict(user.location),
            "risk_reason": None,
        }

    def _request(
        self, user: User, ts: int, injected: set[str], canonical: bool = False
    ) -> Emission:
        rng = self.rng
        if "forbidden_probe" in injected and user.may_access_forbidden():
            user = rng.choice([u for u in self.users if not u.may_access_forbidden()] or [user])
        if "impossible_travel" in injected:  # someone seen at their usual place shortly before
            recent = [
                u
                for u in self.users
                if u.last_ts is not None
                and 0 <= ts - u.last_ts <= 2 * HOUR_MS
                and (u.last_location or {}).get("name") in ("Office", "Home")
            ]
            user = rng.choice(recent) if recent else user
        value = self._base(user, ts, "access_request")
        value["resource"] = rng.choice(user.resources() or ("repo/dharma-streams",))
        value["action"] = rng.choices(("read", "write", "delete"), (0.75, 0.2, 0.05))[0]
        if canonical:
            value["resource"], value["action"] = "database/production/customer_db", "read"
            value["last_auth_ts"] = ts - 180_000
        for risk in injected:
            self._inject(risk, user, value)
        user.last_ts, user.last_location = ts, value["location"]
        return self._record(value, injected)

    def _inject(self, risk: str, user: User, value: dict[str, Any]) -> None:
        rng, device = self.rng, value["device"]
        if risk == "unencrypted_device":
            device["encrypted"] = False
        elif risk == "low_compliance":
            device["compliance_score"] = float(rng.randint(25, 65))
            device["patch_level"] = rng.choice(("outdated", "unknown"))
        elif risk == "no_mfa":
            value["mfa_enabled"] = False
        elif risk == "stale_auth":
            value["last_auth_ts"] = value["ts"] - rng.randint(6 * HOUR_MS, 72 * HOUR_MS)
        elif risk in ("external_ip", "impossible_travel"):
            value["source_ip"] = external_ip(rng)
            value["location"] = dict(rng.choice(FAR_CITIES))
        elif risk == "forbidden_probe":
            value["resource"], value["action"] = rng.choice(FORBIDDEN), "read"

    def _record(self, value: dict[str, Any], injected: set[str]) -> Emission:
        risks = derive_risks(value, injected, self.day_length_ms)
        self.truth.append(
            AccessTruth(
                value["event_id"], value["user_id"], value["ts"], value["event_type"], risks
            )
        )
        return Emission(AUDIT_TOPIC, value["user_id"], value)

    def _degrade(self, tick: int, ts: int) -> list[Emission]:
        healthy = [u for u in self.users[1:] if u.degraded_until < tick]
        if not healthy:
            return []
        user = self.rng.choice(healthy)
        if self.rng.random() < 0.5:
            user.device["encrypted"] = False
        else:
            user.device["compliance_score"] = float(self.rng.randint(30, 65))
            user.device["patch_level"] = "outdated"
        user.degraded_until = tick + self.rng.randint(30, 120)
        return [self._record(self._base(user, ts, "posture_update"), set())]

    def _restore_postures(self, tick: int, ts: int) -> list[Emission]:
        out = []
        for user in self.users:
            if user.degraded_until == tick:
                user.device = dict(user.healthy_device)
                out.append(self._record(self._base(user, ts, "posture_update"), set()))
        return out

    def _risk_signal(self, ts: int) -> Emission:
        user = self.rng.choice(self.users)
        value = self._base(user, ts, "risk_signal")
        value["risk_reason"] = self.rng.choice(RISK_REASONS)
        return self._record(value, set())
