"""Trust scoring: device posture, user and context factors, and trust bands.

All arithmetic is done in :class:`decimal.Decimal` so that the seed's worked
example comes out exactly (``98.0 x 0.35 + 100.0 x 0.40 + 75.0 x 0.25 =
93.05``, not ``93.04999999``); scores are rounded half-up to two decimals
only when they leave this module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from dharma.agents.trust.config import TrustConfig
from dharma.agents.trust.models import AccessEvent, DevicePosture

__all__ = [
    "BANDS",
    "MAX_SCORE",
    "MIN_SCORE",
    "TrustLevel",
    "TrustScores",
    "context_trust",
    "device_trust",
    "score_event",
    "trust_level",
    "user_trust",
]

_ZERO, _HUNDRED, _CENT = Decimal(0), Decimal(100), Decimal("0.01")
W_DEVICE, W_USER, W_CONTEXT = Decimal("0.35"), Decimal("0.40"), Decimal("0.25")


class TrustLevel(enum.IntEnum):
    """Trust bands, ordered: NONE < LOW < MEDIUM < HIGH < FULL."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    FULL = 4


#: Lower bound of each band, highest first.  Scores that can occur run from
#: :data:`MIN_SCORE` to :data:`MAX_SCORE`, so every band is reachable: NONE is
#: 30 to < 40 (no device protection, no MFA, little history, from outside).
BANDS: tuple[tuple[Decimal, TrustLevel], ...] = (
    (Decimal(90), TrustLevel.FULL),
    (Decimal(75), TrustLevel.HIGH),
    (Decimal(50), TrustLevel.MEDIUM),
    (Decimal(40), TrustLevel.LOW),
)

#: Lowest possible overall score: device 0, user 50 (base only), context 40
#: (base, production, outside hours and networks): 0.35 x 0 + 0.40 x 50 + 0.25 x 40.
MIN_SCORE = Decimal(30)
#: Highest possible overall score: device 100, user 100, context 85 (base,
#: business hours, internal network, not production).
MAX_SCORE = Decimal("96.25")


def _cap(value: Decimal) -> Decimal:
    return min(max(value, _ZERO), _HUNDRED)


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def round2(value: Decimal) -> Decimal:
    """Round half-up to two decimals (``93.045`` -> ``93.05``)."""
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def trust_level(score: Decimal | float) -> TrustLevel:
    """Band of a 0-100 score.

    Examples
    --------
    >>> trust_level(93.05).name, trust_level(75).name, trust_level(74.99).name
    ('FULL', 'HIGH', 'MEDIUM')
    >>> trust_level(40).name, trust_level(39.99).name, trust_level(30).name
    ('LOW', 'NONE', 'NONE')
    """
    value = score if isinstance(score, Decimal) else _dec(score)
    for bound, level in BANDS:
        if value >= bound:
            return level
    return TrustLevel.NONE


def device_trust(device: DevicePosture, config: TrustConfig) -> Decimal:
    """Compliance x 0.4 + encryption 20 + firewall 15 + antivirus 15 + patch bonus, capped."""
    return _device_trust(device.compliance_score, device.encrypted, device.firewall,
                         device.antivirus, config.patch_bonus.get(device.patch_level.value, 0))


def _device_trust(compliance: float, encrypted: bool, firewall: bool, antivirus: bool,
                  patch_bonus: int) -> Decimal:
    total = _dec(compliance) * Decimal("0.4")
    total += 20 if encrypted else 0
    total += 15 if firewall else 0
    total += 15 if antivirus else 0
    return _cap(total + patch_bonus)


def user_trust(mfa: bool, recent_auth: bool, history: float) -> Decimal:
    """Base 50 + MFA 30 + recent auth 20 + historical score x 0.2, capped."""
    total = Decimal(50) + (30 if mfa else 0) + (20 if recent_auth else 0)
    return _cap(total + _cap(_dec(history)) * Decimal("0.2"))


def context_trust(business_hours: bool, internal: bool, production: bool) -> Decimal:
    """Base 50 + business hours 20 + internal network 15 - production 10, capped."""
    total = Decimal(50) + (20 if business_hours else 0) + (15 if internal else 0)
    return _cap(total - (10 if production else 0))


@dataclass(frozen=True, slots=True)
class TrustScores:
    """Factors, overall score and band of one request, plus the facts used."""

    device: Decimal
    user: Decimal
    context: Decimal
    overall: Decimal
    level: TrustLevel
    mfa: bool
    recent_auth: bool
    business_hours: bool
    internal: bool
    production: bool
    #: the device's compliance score the decision used (the worse of claimed and reported)
    compliance: float
    #: overall, device, user and context as floats (what a decision record carries),
    #: derived once (scores are memoised)
    floats: tuple[float, float, float, float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "floats", (float(self.overall), float(self.device),
                                            float(self.user), float(self.context)))


def is_recent(event: AccessEvent, config: TrustConfig, at_ms: int | None = None) -> bool:
    """Authenticated less than ``recent_auth_seconds`` before the request, judged at the
    later of the request's time and ``at_ms`` (the deciding clock), so a backdated request
    does not make an old authentication look recent."""
    at = event.ts_ms if at_ms is None else max(at_ms, event.ts_ms)
    age_s = (at - event.last_auth_ms) / 1000
    return -config.clock_skew_seconds <= age_s < config.recent_auth_seconds


def score_event(
    event: AccessEvent, history: float, config: TrustConfig, *, step_up: bool = False,
    at_ms: int | None = None, device: DevicePosture | None = None,
) -> TrustScores:
    """Score a request; ``step_up`` scores it as if MFA and re-auth just happened.

    Parameters
    ----------
    event
        The validated request.
    history
        The user's historical behaviour score, 0-100.
    config
        Networks, business hours and bonuses.
    step_up
        Assume a fresh MFA authentication (used to decide CHALLENGE).
    at_ms
        The deciding clock: business hours and the recency of authentication are
        judged then (None: at the request's own time, for replays of past records).
    device
        The posture to score (default: the one the request claims).
    """
    posture = event.device if device is None else device
    return _combine(
        posture.compliance_score, posture.encrypted, posture.firewall, posture.antivirus,
        config.patch_bonus.get(posture.patch_level, 0),  # a StrEnum: its value's hash
        step_up or event.mfa_enabled,
        step_up or is_recent(event, config, at_ms),
        config.business_hours_at(event.ts_ms if at_ms is None else at_ms),
        config.is_internal(event.source_ip),
        config.is_production(event.resource),
        history,
    )


@lru_cache(maxsize=65_536)
def _combine(compliance: float, encrypted: bool, firewall: bool, antivirus: bool,
             patch_bonus: int, mfa: bool, recent: bool, hours: bool, internal: bool,
             production: bool, history: float) -> TrustScores:
    """The scores from the facts of a request (memoised: requests repeat their facts)."""
    device = _device_trust(compliance, encrypted, firewall, antivirus, patch_bonus)
    user = user_trust(mfa, recent, history)
    context = context_trust(hours, internal, production)
    overall = round2(device * W_DEVICE + user * W_USER + context * W_CONTEXT)
    return TrustScores(
        device=round2(device),
        user=round2(user),
        context=round2(context),
        overall=overall,
        level=trust_level(overall),
        mfa=mfa,
        recent_auth=recent,
        business_hours=hours,
        internal=internal,
        production=production,
        compliance=compliance,
    )
