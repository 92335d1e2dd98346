"""Provisional classifier (replaced by the playbooks slice)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Classification", "classify"]


@dataclass(frozen=True)
class Classification:
    issue_type: str
    confidence: float
    evidence: dict[str, float] = field(default_factory=dict)


def classify(series: Mapping[str, Sequence[tuple[int, float]]],
             metric: str | None = None) -> Classification:
    values = [v for _, v in series.get(metric or "", [])]
    if metric == "memory_utilization" and len(values) >= 2 and values[-1] > values[0]:
        return Classification("memory_leak", 0.8)
    return Classification("unknown", 0.2)
