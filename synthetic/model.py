"""Shared value types and helpers of the synthetic source.

Everything here is pure: no I/O, no global random state.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

METRICS_TOPIC = "metrics.raw"
INFRA_TOPIC = "infrastructure.events"
AUDIT_TOPIC = "audit.logs"

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Emission:
    """One message to produce.

    Parameters
    ----------
    topic
        Topic name (``metrics.raw``, ``infrastructure.events`` or ``audit.logs``).
    key
        Message key: source, resource_id or user_id.
    value
        Plain dict that validates against ``schemas/<topic>-value.avsc``.
    bad_reason
        Set only on deliberately bad payloads (see :func:`bad_events`).
    """

    topic: str
    key: str
    value: dict[str, Any]
    bad_reason: str | None = None


@dataclass(frozen=True)
class Label:
    """Ground truth for one injected incident or chaos experiment.

    ``end_ms`` is exclusive: samples with ``onset_ms <= ts < end_ms`` are affected.
    """

    incident_id: str
    category: str
    source: str
    metrics: tuple[str, ...]
    onset_ms: int
    end_ms: int
    severity: str = "warning"
    chaos: bool = False

    def contains(self, source: str, metric: str, ts: int) -> bool:
        """Whether the sample ``(source, metric, ts)`` lies inside this label."""
        inside = self.onset_ms <= ts < self.end_ms
        return inside and source == self.source and metric in self.metrics

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``metrics`` as a list)."""
        return {
            "incident_id": self.incident_id,
            "category": self.category,
            "source": self.source,
            "metrics": list(self.metrics),
            "onset_ms": self.onset_ms,
            "end_ms": self.end_ms,
            "severity": self.severity,
            "chaos": self.chaos,
        }


def stable_int(*parts: object) -> int:
    """A 64-bit integer from ``parts`` via SHA-256 (stable across processes)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def derive_rng(seed: int, stream: str) -> random.Random:
    """An independent ``random.Random`` for one sub-stream of a seeded run."""
    return random.Random(stable_int(seed, stream))


def derive_np_rng(seed: int, stream: str) -> np.random.Generator:
    """An independent numpy ``Generator`` for one sub-stream of a seeded run."""
    return np.random.default_rng(stable_int(seed, stream))


def new_id(rng: random.Random, prefix: str = "") -> str:
    """A UUID4-shaped id drawn from ``rng`` (deterministic for a seed)."""
    text = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return f"{prefix}{text}" if prefix else text


def poisson(rng: random.Random, lam: float) -> int:
    """Poisson draw: Knuth below 30, normal approximation above."""
    if lam <= 0:
        return 0
    if lam >= 30:
        return max(0, round(rng.gauss(lam, lam**0.5)))
    limit, k, p = np.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
