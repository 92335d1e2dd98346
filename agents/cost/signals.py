"""What the cost agent reads: asset lifecycle events and utilisation samples, decoded
and validated (a :class:`~dharma.streams.errors.ContractViolation` dead-letters the
event with its reason)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from dharma.agents.cost.logic import HOUR_MS, Lifecycle, Placement
from dharma.sinks.costs import UsageRow
from dharma.streams.errors import ContractViolation
from dharma.streams.records import MetricSample, checked_name

__all__ = ["hourly_maxima", "to_lifecycle", "to_usage"]

_PLACEMENT = ("name", "asset_type", "team", "env", "provider", "region")


def to_lifecycle(raw: Mapping[str, Any], latest: int) -> Lifecycle | None:
    """The lifecycle step of a decoded ``infrastructure.events`` value (``None`` for the
    other event types); refused when its attributes are not an asset's, its price is not
    a finite amount, or it is dated after ``latest`` (ms): a future ``created`` would
    otherwise bill time that has not happened."""
    if raw["type"] != "asset":
        return None
    if raw["ts"] > latest:
        raise ContractViolation(f"asset event {raw['event_id']} is dated {raw['ts'] - latest} "
                                "ms beyond the worker's clock and allowed skew")
    attrs = raw["attributes"]
    if (missing := [f for f in (*_PLACEMENT, "action") if f not in attrs]):
        raise ContractViolation(f"asset event {raw['event_id']} has attributes of another "
                                f"type (missing {', '.join(missing)})")
    cost = attrs.get("hourly_cost")
    if cost is not None and not (math.isfinite(cost) and cost >= 0):
        raise ContractViolation(f"hourly_cost must be a finite amount, not {cost!r}")
    placement = Placement(attrs["name"], attrs["asset_type"], attrs["team"], attrs["env"],
                          attrs["provider"], attrs["region"], attrs.get("instance_type"))
    resource_id = checked_name(raw["resource_id"], "resource_id")
    return Lifecycle(raw["event_id"], resource_id, raw["ts"], attrs["action"], placement, cost)


def to_usage(sample: MetricSample, metrics: tuple[str, ...]) -> UsageRow | None:
    """The hourly-maximum row of a utilisation sample (``None`` for other metrics);
    refused when it is not a percentage."""
    if sample.metric not in metrics:
        return None
    if not 0.0 <= sample.value <= 100.0:
        raise ContractViolation(f"{sample.metric} of {sample.source} is {sample.value!r}, "
                                "not a percentage")
    return UsageRow(sample.source, sample.metric, sample.ts - sample.ts % HOUR_MS, sample.value)


def hourly_maxima(rows: list[UsageRow]) -> list[UsageRow]:
    """One row per (resource, metric, hour): the highest of ``rows``."""
    best: dict[tuple[str, str, int], UsageRow] = {}
    for row in rows:
        key = (row.resource_id, row.metric, row.hour)
        if key not in best or row.max > best[key].max:
            best[key] = row
    return list(best.values())
