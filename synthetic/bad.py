"""Deliberately bad ``metrics.raw`` payloads, for demos and dead-letter tests.

They are schema-valid Avro (so a producer can send them) but break the
contract's semantics: non-finite values, timestamps far in the future or at the
epoch, an empty source.
"""

from __future__ import annotations

import math
import random

from dharma.synthetic.model import METRICS_TOPIC, Emission, derive_rng

BAD_KINDS = ("nan", "inf", "neg_inf", "future_ts", "epoch_ts", "empty_source")
#: 2100-01-01T00:00:00Z: far in the future whenever this runs
FAR_FUTURE_MS = 4_102_444_800_000
DEFAULT_NOW_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def bad_sample(
    rng: random.Random, ts: int, source: str, metric: str, unit: str | None, kind: str | None = None
) -> Emission:
    """One bad sample of ``kind`` (random kind when None); ``bad_reason`` names it."""
    kind = kind or rng.choice(BAD_KINDS)
    value: float = round(rng.uniform(1, 100), 3)
    if kind == "nan":
        value = math.nan
    elif kind == "inf":
        value = math.inf
    elif kind == "neg_inf":
        value = -math.inf
    if kind == "future_ts":
        ts = FAR_FUTURE_MS + rng.randrange(86_400_000)
    elif kind == "epoch_ts":
        ts = 0
    if kind == "empty_source":
        source = ""
    payload = {
        "source": source,
        "metric": metric,
        "value": value,
        "ts": ts,
        "labels": {"synthetic": "bad", "bad_kind": kind},
        "unit": unit,
    }
    return Emission(METRICS_TOPIC, source, payload, bad_reason=kind)


def bad_events(seed: int, count: int = 12, now_ms: int = DEFAULT_NOW_MS) -> list[Emission]:
    """``count`` bad ``metrics.raw`` emissions cycling through :data:`BAD_KINDS`.

    Examples
    --------
    >>> [e.bad_reason for e in bad_events(7, count=3)]
    ['nan', 'inf', 'neg_inf']
    >>> bad_events(7, count=6)[-1].value["source"]
    ''
    """
    rng = derive_rng(seed, "bad")
    out = []
    for i in range(count):
        source = f"web-server-{rng.randint(1, 3):02d}"
        out.append(
            bad_sample(
                rng,
                now_ms - rng.randrange(60_000),
                source,
                "cpu_utilization",
                "percent",
                BAD_KINDS[i % len(BAD_KINDS)],
            )
        )
    return out
