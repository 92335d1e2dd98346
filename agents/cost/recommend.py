"""Savings recommendations: right-size, schedule non-production shutdown, commit.

Pure: the caller reads the assets, their hourly utilisation and the daily spend
from the stores and passes them in with the settings and the time of computation.
The rules run in this order, each on what the one before leaves:

1. **right_size** (AWS Compute Optimizer's rule): at least ``min_hours`` hours of
   CPU data in the last ``lookback_days``; the ``percentile`` of the hourly CPU
   maxima * current vCPU * ``headroom`` is the vCPU needed, and the same for
   memory.  Without ``min_hours`` of memory data the memory is taken as needed
   in full (an unseen footprint is never shrunk).  The cheapest smaller size of
   the same family in the catalogue that fits is proposed; savings are the
   difference of the list prices * 730 hours.
2. **schedule_shutdown**: a non-production asset (env set, not ``prod``/``production``)
   whose CPU stayed below ``idle_percent`` in every hour outside business hours
   (Monday-Friday ``[start, end)`` UTC) with at least ``min_hours`` such hours;
   off outside business hours saves its rate (after right-sizing) * the off hours
   of a month, (168 - 5 * (end - start)) * 52 / 12.
3. **commitment** (Cost Explorer's Savings Plans shape): per team (``team:T``)
   and for the estate (``all``), 30 complete UTC days of spend whose coefficient
   of variation is below ``commitment_cv``.  The hourly commitment is the lowest
   daily spend / 24, less the hourly savings of the rules above in that scope
   (and, for the estate, less the teams' own commitments), rounded down to
   0.001; savings are commitment * 730 * ``commitment_discount``.

Potential savings are the sum of the recommendations' monthly savings, as in the
seed's response.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dharma.agents.cost.catalogue import Catalogue, InstanceSize
from dharma.streams.settings import CostSettings

__all__ = ["COMMITMENT_DAYS", "DAY_MS", "HOURS_PER_MONTH", "Asset", "DailySpend", "HourlyMax",
           "Recommendation", "Recommendations", "Skipped", "Usage", "hourly_usage",
           "off_hours_per_month", "recommend"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: Hours in a month, as AWS prices a month (8760 / 12).
HOURS_PER_MONTH = 730.0
#: Days of spend a commitment rests on.
COMMITMENT_DAYS = 30
CPU, MEMORY = "cpu_utilization", "memory_utilization"
PRODUCTION = frozenset({"prod", "production"})
KIND = "cost_recommendation"
_NAMESPACE = uuid.UUID("0d6c8f9e-5a3b-4f57-9c1e-7b2a4d6e8f10")

#: resource id -> metric -> hour start (epoch ms) -> highest percent in that hour.
Usage = Mapping[str, Mapping[str, Mapping[int, float]]]
#: scope ('team:T' or 'all') -> UTC day start (epoch ms) -> spend.
DailySpend = Mapping[str, Mapping[int, float]]


class HourlyMax(Protocol):
    """A stored hourly maximum of one utilisation metric of one asset."""

    @property
    def resource_id(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def hour(self) -> int: ...
    @property
    def max(self) -> float: ...


def hourly_usage(rows: Iterable[HourlyMax]) -> dict[str, dict[str, dict[int, float]]]:
    """Stored hourly maxima as the rules read them; an hour given twice keeps its highest.

    >>> from collections import namedtuple
    >>> Row = namedtuple("Row", "resource_id metric hour max")
    >>> hourly_usage([Row("a", "cpu", 0, 5.0), Row("a", "cpu", 0, 7.0), Row("a", "cpu", 1, 2.0)])
    {'a': {'cpu': {0: 7.0, 1: 2.0}}}
    """
    out: dict[str, dict[str, dict[int, float]]] = {}
    for row in rows:
        hours = out.setdefault(row.resource_id, {}).setdefault(row.metric, {})
        hours[row.hour] = max(row.max, hours.get(row.hour, row.max))
    return out


@dataclass(frozen=True)
class Asset:
    """A live asset as the cost store knows it (``hourly_cost`` None: unpriced)."""

    resource_id: str
    name: str
    team: str
    env: str
    provider: str
    region: str
    asset_type: str
    instance_type: str | None
    hourly_cost: float | None


@dataclass(frozen=True)
class Recommendation:
    """One recommendation with the figures it rests on (``evidence``)."""

    type: str
    subject: str
    team: str
    current: str
    proposed: str
    monthly_savings: float
    evidence: dict[str, str]
    summary: str
    ts: int
    currency: str = "USD"

    @property
    def prediction_id(self) -> str:
        """Deterministic id of (type, subject, UTC day computed): a recomputation replaces it.

        >>> r = Recommendation("commitment", "all", "", "on-demand", "x", 1.0, {}, "", 5)
        >>> r.prediction_id == Recommendation("commitment", "all", "", "", "", 2.0, {}, "",
        ...                                   DAY_MS - 1).prediction_id
        True
        """
        day = self.ts // DAY_MS * DAY_MS
        return str(uuid.uuid5(_NAMESPACE, f"{self.type}\x1f{self.subject}\x1f{day}"))

    def to_record(self) -> dict[str, Any]:
        """The ``CostRecommendation`` record of ``ml.predictions`` (the contract's fields)."""
        return {"kind": KIND, "prediction_id": self.prediction_id, "ts": self.ts,
                "type": self.type, "subject": self.subject, "team": self.team,
                "current": self.current, "proposed": self.proposed,
                "monthly_savings": self.monthly_savings, "currency": self.currency,
                "evidence": dict(self.evidence), "summary": self.summary}


@dataclass(frozen=True)
class Skipped:
    """Why a rule made no recommendation for a subject."""

    rule: str
    subject: str
    team: str
    reason: str


@dataclass(frozen=True)
class Recommendations:
    """The recommendations, largest savings first, and what was skipped and why."""

    items: list[Recommendation]
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def potential_savings(self) -> float:
        """The sum of the monthly savings (the seed's ``potential_savings``)."""
        return round(sum(r.monthly_savings for r in self.items), 2)


def off_hours_per_month(business_hours: tuple[int, int]) -> float:
    """Hours a month outside Monday-Friday ``[start, end)``.

    >>> round(off_hours_per_month((8, 19)), 2)  # (168 - 5 * 11) * 52 / 12
    489.67
    """
    start, end = business_hours
    if not 0 <= start < end <= 24:
        raise ValueError(f"business hours {business_hours}: [start, end) with "
                         "0 <= start < end <= 24")
    return (168 - 5 * (end - start)) * 52 / 12


def _is_business_hour(hour_ms: int, business_hours: tuple[int, int]) -> bool:
    weekday = (hour_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    hour = hour_ms // HOUR_MS % 24
    return weekday < 5 and business_hours[0] <= hour < business_hours[1]


def _recent(series: Mapping[int, float] | None, start: int, end: int) -> list[tuple[int, float]]:
    """The hours of ``series`` in ``[start, end)``, in order.

    A percent below 0 or not finite is no evidence and is left out; one above 100
    counts as 100 (saturated), so a forged reading can never make a size look idle.

    >>> _recent({0: 5.0, 1: -1.0, 2: float("nan"), 3: 250.0, 9: 1.0}, 0, 9)
    [(0, 5.0), (3, 100.0)]
    """
    return sorted((h, min(v, 100.0)) for h, v in (series or {}).items()
                  if start <= h < end and v >= 0 and not math.isnan(v))


def _num(value: float) -> str:
    """A figure for the evidence: at most 6 decimals, no trailing zeros.

    >>> _num(0.0416), _num(70.08000000000001), _num(12345.678), _num(2.0)
    ('0.0416', '70.08', '12345.678', '2')
    """
    return f"{round(value, 6):.15g}"


class _Rules:
    """The three rules over one set of inputs (see the module's doc)."""

    def __init__(self, usage: Usage, settings: CostSettings, catalogue: Catalogue,
                 now_ms: int) -> None:
        self.usage, self.settings, self.catalogue, self.now = usage, settings, catalogue, now_ms
        self.since = now_ms - settings.lookback_days * DAY_MS
        self.skipped: list[Skipped] = []
        self.committed: dict[str, float] = {}  # scope -> hourly commitment proposed

    def skip(self, rule: str, subject: str, team: str, reason: str) -> None:
        self.skipped.append(Skipped(rule, subject, team, reason))

    def pass_over(self, rule: str, asset: Asset, reason: str) -> None:
        self.skip(rule, asset.resource_id, asset.team, reason)

    def recommendation(self, kind: str, subject: str, team: str, current: str, proposed: str,
                       savings: float, evidence: dict[str, str], summary: str) -> Recommendation:
        return Recommendation(kind, subject, team, current, proposed, round(savings, 2),
                              evidence, summary, self.now, self.settings.currency)

    def _needed(self, rid: str, metric: str, capacity: float, unit: str,
                evidence: dict[str, str]) -> tuple[int, float]:
        """(hours observed, capacity needed) of one metric; all of it without enough data."""
        values = [v for _, v in _recent(self.usage.get(rid, {}).get(metric), self.since,
                                        self.now)]
        evidence[f"{unit}_hours"] = str(len(values))
        if len(values) < self.settings.min_hours:
            return len(values), capacity
        pct = float(np.percentile(values, self.settings.percentile))
        needed = pct / 100 * capacity * self.settings.headroom
        evidence[f"{unit}_p{self.settings.percentile:g}_percent"] = _num(pct)
        evidence[f"{unit}_needed"] = _num(needed)
        return len(values), needed

    def right_size(self, asset: Asset) -> Recommendation | None:
        rid, current = asset.resource_id, self.catalogue.get(asset.instance_type)
        if current is None:
            self.pass_over("right_size", asset, f"instance type {asset.instance_type or '(none)'} "
                           "is not in the catalogue")
            return None
        evidence = {"lookback_days": str(self.settings.lookback_days),
                    "headroom": _num(self.settings.headroom),
                    "current_vcpu": _num(current.vcpu),
                    "current_memory_gib": _num(current.memory_gib)}
        cpu_hours, vcpu = self._needed(rid, CPU, current.vcpu, "cpu", evidence)
        if cpu_hours < self.settings.min_hours:
            self.pass_over("right_size", asset, f"{cpu_hours} hours of CPU data in the last "
                           f"{self.settings.lookback_days} days ({self.settings.min_hours} needed)")
            return None
        _, memory = self._needed(rid, MEMORY, current.memory_gib, "memory", evidence)
        fits = [s for s in self.catalogue.cheaper_in_family(current.size)
                if s.vcpu >= vcpu and s.memory_gib >= memory]
        if not fits:
            self.pass_over("right_size", asset, f"no cheaper {current.family} size fits "
                           f"{_num(vcpu)} vCPU and {_num(memory)} GiB")
            return None
        return self._resize(asset, current, fits[0], evidence)

    def _resize(self, asset: Asset, current: InstanceSize, proposed: InstanceSize,
                evidence: dict[str, str]) -> Recommendation:
        saving = (current.hourly_price - proposed.hourly_price) * HOURS_PER_MONTH
        evidence |= {"current_price": _num(current.hourly_price),
                     "proposed_price": _num(proposed.hourly_price),
                     "proposed_vcpu": _num(proposed.vcpu),
                     "proposed_memory_gib": _num(proposed.memory_gib)}
        return self.recommendation(
            "right_size", asset.resource_id, asset.team, current.size, proposed.size, saving,
            evidence, f"{asset.name}: {current.size} -> {proposed.size} fits its "
            f"p{self.settings.percentile:g} utilisation with {self.settings.headroom:g}x headroom")

    def _price_cut(self, resized: Recommendation | None) -> float:
        """The hourly list price a right-size takes off (0 without one)."""
        if resized is None:
            return 0.0
        old, new = self.catalogue.get(resized.current), self.catalogue.get(resized.proposed)
        assert old is not None and new is not None  # right_size proposed catalogue sizes
        return old.hourly_price - new.hourly_price

    def _idle_off_hours(self, asset: Asset) -> list[float] | None:
        """The CPU maxima outside business hours of an asset idle then (None: not a case)."""
        rid = asset.resource_id
        if asset.env.lower() in PRODUCTION:
            return None
        if not asset.env.strip():
            self.pass_over("schedule_shutdown", asset, "no env: taken as production")
            return None
        if asset.hourly_cost is None or not 0 < asset.hourly_cost < math.inf:
            self.pass_over("schedule_shutdown", asset, "no known price")
            return None
        off = [v for h, v in _recent(self.usage.get(rid, {}).get(CPU), self.since, self.now)
               if not _is_business_hour(h, self.settings.business_hours)]
        if len(off) < self.settings.min_hours:
            self.pass_over("schedule_shutdown", asset, f"{len(off)} hours of CPU data outside "
                           f"business hours ({self.settings.min_hours} needed)")
            return None
        if max(off) >= self.settings.idle_percent:
            self.pass_over("schedule_shutdown", asset, f"CPU reached {_num(max(off))} % outside "
                           f"business hours (idle below {_num(self.settings.idle_percent)} %)")
            return None
        return off

    def schedule(self, asset: Asset, resized: Recommendation | None) -> Recommendation | None:
        off = self._idle_off_hours(asset)
        if off is None or asset.hourly_cost is None:
            return None
        rate = asset.hourly_cost - self._price_cut(resized)
        if rate <= 0:
            self.pass_over("schedule_shutdown", asset, "nothing left to save after "
                           "right-sizing")
            return None
        start, end = self.settings.business_hours
        off_month = off_hours_per_month((start, end))
        window = f"off {end % 24:02d}:00-{start:02d}:00 UTC on weekdays and all weekend"
        evidence = {"env": asset.env, "off_hours_observed": str(len(off)),
                    "cpu_max_off_hours_percent": _num(max(off)),
                    "idle_percent": _num(self.settings.idle_percent),
                    "hourly_rate": _num(rate), "off_hours_per_month": _num(off_month)}
        return self.recommendation(
            "schedule_shutdown", asset.resource_id, asset.team, "always on", window,
            rate * off_month, evidence,
            f"{asset.name} ({asset.env}) idles outside business hours: {window}")

    def commitment(self, scope: str, team: str, days: Mapping[int, float],
                   covered_hourly: float) -> Recommendation | None:
        """A commitment on ``scope``'s stable spend, less ``covered_hourly``."""
        today = self.now // DAY_MS * DAY_MS
        window = [today - (COMMITMENT_DAYS - i) * DAY_MS for i in range(COMMITMENT_DAYS)]
        spend = [days[d] for d in window if d in days and math.isfinite(days[d])]
        if len(spend) < COMMITMENT_DAYS:
            self.skip("commitment", scope, team, f"{len(spend)} of the last {COMMITMENT_DAYS} "
                      "days have spend")
            return None
        mean = statistics.fmean(spend)
        cv = statistics.pstdev(spend) / mean if mean > 0 else math.inf
        if cv >= self.settings.commitment_cv:
            self.skip("commitment", scope, team, f"daily spend varies: coefficient of variation "
                      f"{_num(cv)} (below {_num(self.settings.commitment_cv)} needed)")
            return None
        hourly = math.floor((min(spend) / 24 - covered_hourly) * 1000) / 1000
        if hourly <= 0:
            self.skip("commitment", scope, team, "nothing left to commit after the other savings")
            return None
        self.committed[scope] = hourly
        discount = self.settings.commitment_discount
        evidence = {"days": str(len(spend)), "mean_daily": _num(mean), "cv": _num(cv),
                    "min_daily": _num(min(spend)), "covered_hourly": _num(covered_hourly),
                    "commitment_hourly": _num(hourly), "discount": _num(discount)}
        proposed = f"1-year commitment of {hourly:.3f} {self.settings.currency}/h"
        return self.recommendation(
            "commitment", scope, team, "on-demand", proposed,
            hourly * HOURS_PER_MONTH * discount, evidence,
            f"{scope}: stable spend (cv {cv:.3f}) -> {proposed} at {discount:.0%} off")


def _hourly(recs: Iterable[Recommendation]) -> float:
    return sum(r.monthly_savings for r in recs) / HOURS_PER_MONTH


def recommend(assets: Iterable[Asset], usage: Usage, daily: DailySpend,
              settings: CostSettings, catalogue: Catalogue, now_ms: int) -> Recommendations:
    """Every recommendation the rules make at ``now_ms`` (see the module's doc)."""
    off_hours_per_month(settings.business_hours)  # refuse bad hours before any rule runs
    rules = _Rules(usage, settings, catalogue, now_ms)
    per_asset: list[Recommendation] = []
    for asset in {a.resource_id: a for a in assets}.values():
        resized = rules.right_size(asset)
        scheduled = rules.schedule(asset, resized)
        per_asset += [r for r in (resized, scheduled) if r is not None]
    commitments: list[Recommendation] = []
    for scope in sorted(s for s in daily if s.startswith("team:")):
        team = scope.removeprefix("team:")
        covered = _hourly(r for r in per_asset if r.team == team)
        if rec := rules.commitment(scope, team, daily[scope], covered):
            commitments.append(rec)
    if "all" in daily:
        covered = _hourly(per_asset) + sum(rules.committed.values())
        if rec := rules.commitment("all", "", daily["all"], covered):
            commitments.append(rec)
    items = sorted(per_asset + commitments,
                   key=lambda r: (-r.monthly_savings, r.type, r.subject))
    return Recommendations(items, rules.skipped)
