"""The issue classifier against the generator's labelled incidents: a confusion table.

The synthetic source runs for ``days`` simulated days (chaos experiments,
deployments and access logs off); every incident label whose alert point falls
inside the run is classified from its source's samples over the hour before
that point, all metrics of the resource, with the label's first metric as the
alert's.

**The alert point** is what a plain static rule with a ``for: 30s`` would see: the
first tick from the onset at which the label's first metric has been outside the
band ``median ± max(4 sigma, 10 % of the median)`` of the hour before the onset for
3 consecutive samples (sigma: the MAD of successive differences / sqrt 2); an
incident that never leaves the band is taken at onset + half its duration
(counted as ``late`` in the figures).  So the classifier sees an incident early,
when an alert would first arrive, not once it is obvious.

>>> figures = run(seed=5, days=0.5, incidents_per_day=40)
>>> figures["incidents"] > 5 and 0 <= figures["accuracy"] <= 1
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dharma.agents.healing.classify import ISSUE_TYPES, classify, robust_noise
from dharma.synthetic.access import AccessConfig
from dharma.synthetic.model import DAY_MS, METRICS_TOPIC, Label
from dharma.synthetic.schedule import IncidentConfig
from dharma.synthetic.source import SyntheticSource

__all__ = ["Outcome", "alert_tick", "confusion", "run"]

START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
INTERVAL_MS = 10_000
#: Samples of history before the alert (the seed's last hour at 10 s).
HISTORY_TICKS = 360
#: Consecutive out-of-band samples before the alert fires (``for: 30s``).
FOR_SAMPLES = 3

_Values = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Outcome:
    """One classified incident."""

    truth: str
    predicted: str
    blind: str  # predicted without the alert's metric
    confidence: float
    late: bool


def _simulate(seed: int, days: float, incidents_per_day: float) -> tuple[
        SyntheticSource, dict[tuple[str, str], _Values]]:
    """Run the source; every (source, metric) series as values indexed by tick."""
    source = SyntheticSource(
        seed, START_MS, INTERVAL_MS, incidents=IncidentConfig(
            incidents_per_day=incidents_per_day, chaos_per_day=0.0, emit_incident_events=False),
        access=AccessConfig(requests_per_tick=0, posture_updates_per_tick=0,
                            risk_signals_per_tick=0),
        deployments_per_day=0.0, health_check_every=10**9)
    ticks = int(days * DAY_MS / INTERVAL_MS)
    columns: dict[tuple[str, str], list[float]] = {}
    for batch in source.ticks(ticks):
        for emission in batch:
            if emission.topic == METRICS_TOPIC:
                v = emission.value
                columns.setdefault((v["source"], v["metric"]), []).append(v["value"])
    return source, {key: np.asarray(vals) for key, vals in columns.items()}


def alert_tick(values: _Values, onset: int, end: int) -> tuple[int, bool]:
    """When a static ``for: 30s`` rule on ``values`` fires for an incident over
    ``[onset, end)``, and whether it never did (then onset + half the duration).

    >>> values = np.asarray([50.0, 50.5] * 30 + [50.0 + 2 * i for i in range(20)])
    >>> alert_tick(values, 60, 80)
    (65, False)
    """
    baseline = values[max(0, onset - HISTORY_TICKS):onset]
    centre = float(np.median(baseline))
    band = max(4 * robust_noise(baseline), 0.1 * abs(centre))
    run_length = 0
    for tick in range(onset, min(end, len(values))):
        run_length = run_length + 1 if abs(values[tick] - centre) > band else 0
        if run_length == FOR_SAMPLES:
            return tick, False
    return onset + (end - onset) // 2, True


def _classify_label(label: Label, source: SyntheticSource,
                    series: dict[tuple[str, str], _Values]) -> Outcome | None:
    onset = (label.onset_ms - START_MS) // INTERVAL_MS
    end = (label.end_ms - START_MS) // INTERVAL_MS
    primary = label.metrics[0]
    fired, late = alert_tick(series[(label.source, primary)], onset, end)
    if fired >= len(series[(label.source, primary)]):
        return None
    first = max(0, fired - HISTORY_TICKS)
    window: dict[str, list[tuple[int, float]]] = {
        metric: [(source.ts_of(t), float(values[t])) for t in range(first, fired + 1)]
        for (res, metric), values in series.items() if res == label.source}
    found = classify(window, primary)
    return Outcome(label.category, found.issue_type, classify(window).issue_type,
                   found.confidence, late)


def confusion(pairs: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """Counts of (truth, predicted), rows truth, columns every issue type.

    >>> confusion([("cpu_spike", "cpu_spike"), ("cpu_spike", "unknown")])["cpu_spike"]["unknown"]
    1
    """
    counts = Counter(pairs)
    truths = sorted({t for t, _ in counts}, key=ISSUE_TYPES.index)
    return {t: {p: counts[(t, p)] for p in ISSUE_TYPES} for t in truths}


def _accuracy(pairs: list[tuple[str, str]]) -> float:
    return round(sum(t == p for t, p in pairs) / len(pairs), 3) if pairs else 0.0


def run(seed: int = 7, days: float = 4.0, incidents_per_day: float = 36.0) -> dict[str, Any]:
    """Classify every labelled incident of a run; the confusion table and figures."""
    source, series = _simulate(seed, days, incidents_per_day)
    outcomes = [o for label in source.ground_truth()
                if (o := _classify_label(label, source, series)) is not None]
    pairs = [(o.truth, o.predicted) for o in outcomes]
    table = confusion(pairs)
    right = [o.confidence for o in outcomes if o.truth == o.predicted]
    wrong = [o.confidence for o in outcomes if o.truth != o.predicted]
    return {
        "seed": seed, "days": days, "incidents": len(outcomes),
        "late_alerts": sum(o.late for o in outcomes),
        "accuracy": _accuracy(pairs),
        "accuracy_without_alert_metric": _accuracy([(o.truth, o.blind) for o in outcomes]),
        "recall": {t: round(row[t] / max(sum(row.values()), 1), 3) for t, row in table.items()},
        "mean_confidence_right": round(float(np.mean(right)), 3) if right else 0.0,
        "mean_confidence_wrong": round(float(np.mean(wrong)), 3) if wrong else 0.0,
        "confusion": [{"truth": t, **row} for t, row in table.items()],
    }
