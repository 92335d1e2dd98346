"""An evicted idle series resolves its open alert (issue #10, item 12); a flood of new
series is capped (``DHARMA_WORKER_MAX_SERIES``).

One series, one sample a minute, 260 samples ending now, shifted by +30 noise
sigmas from sample 200 to the end: the incident fires and is still going on when
the series stops reporting.  The worker forgets series idle for 3 s
(``DHARMA_WORKER_SERIES_IDLE_TTL_S``); before forgetting this one it must send
the episode's ``resolved`` alert, dated at the last sample, with the id the pure
alert logic gives the same samples (so a repeated eviction after a crash sends
the same notification).
"""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from typing import Any

import pytest
from anomaly_helpers import MINUTE_MS, offline_alerts, series_samples, to_ms
from prometheus_client.parser import text_string_to_metric_families

from dharma.agents.anomaly.logic import close_idle_episode
from dharma.streams.alerting import AlertPolicy

pytestmark = pytest.mark.integration

N, ONSET = 260, 200


def test_an_idle_series_with_an_open_episode_is_resolved_when_it_is_forgotten(
        producer: Any, workers: Any, reader: Any, poll: Any) -> None:
    source = f"idle-{uuid.uuid4().hex[:6]}"
    samples = series_samples(source, N, int(time.time() * 1000) - N * MINUTE_MS, seed=3,
                             shift=(ONSET, 30.0))
    sent, state = offline_alerts(samples)
    assert [a["status"] for a in sent][:1] == ["firing"] and state.firing_since is not None
    expected = close_idle_episode(f"{source}|cpu_utilization", state, AlertPolicy())
    assert expected is not None and to_ms(expected["ts"]) == samples[-1]["ts"]

    alerts = reader("alerts.notifications", lambda v: v.get("source") == source)
    workers("anomaly", DHARMA_WORKER_SERIES_IDLE_TTL_S="3")
    for sample in samples:
        producer.produce("metrics.raw", source, sample)
    producer.flush()

    def resolved() -> list[dict[str, Any]]:
        return [a for a in alerts.poll() if a["status"] == "resolved"]

    (got,) = poll(resolved, "the idle series' open episode resolved", timeout=90)
    assert got["alert_id"] == expected["alert_id"]
    assert to_ms(got["ts"]) == samples[-1]["ts"]
    firing = [a for a in alerts.values if a["status"] == "firing"]
    assert firing and all(to_ms(a["ts"]) < to_ms(got["ts"]) for a in firing)


def test_an_open_episode_recovered_after_a_restart_is_resolved_when_its_series_stays_idle(
        producer: Any, workers: Any, reader: Any, poll: Any) -> None:
    """The worker that saw the incident stops; the one that recovers its checkpoint never
    gets another sample of the series, yet forgets it (and resolves its alert) after the
    idle TTL, instead of keeping a dormant checkpoint with an alert firing forever."""
    source = f"dormant-{uuid.uuid4().hex[:6]}"
    samples = series_samples(source, N, int(time.time() * 1000) - N * MINUTE_MS, seed=3,
                             shift=(ONSET, 30.0))
    _, state = offline_alerts(samples)
    expected = close_idle_episode(f"{source}|cpu_utilization", state, AlertPolicy())
    assert expected is not None

    alerts = reader("alerts.notifications", lambda v: v.get("source") == source)
    first = workers("anomaly")
    for sample in samples:
        producer.produce("metrics.raw", source, sample)
    producer.flush()
    poll(lambda: any(a["status"] == "firing" for a in alerts.poll()), "the incident fired",
         timeout=90)
    first.stop()  # SIGTERM: its checkpoints are flushed as it leaves
    workers("anomaly", DHARMA_WORKER_SERIES_IDLE_TTL_S="3")

    def resolved() -> list[dict[str, Any]]:
        return [a for a in alerts.poll() if a["status"] == "resolved"]

    (got,) = poll(resolved, "the dormant series' open episode resolved", timeout=120)
    assert got["alert_id"] == expected["alert_id"]


def _capacity_evictions(worker: Any) -> float:
    """``dharma_table_keys_evicted_total{table="detectors",reason="capacity"}`` of ``worker``
    (its metrics port is in its log), 0 while not served."""
    found = re.search(r"metrics\s+at\s+(http://127\.0\.0\.1:\d+/metrics)", worker.output())
    if found is None:
        return 0.0
    with urllib.request.urlopen(found.group(1), timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name == "dharma_table_keys_evicted_total"
                    and sample.labels == {"table": "detectors", "reason": "capacity"}):
                return float(sample.value)
    return 0.0


def test_a_flood_of_new_series_is_capped_counted_and_still_scored(
        producer: Any, workers: Any, reader: Any, poll: Any) -> None:
    """One sample each for 200 new series through a worker that keeps at most 20
    (``DHARMA_WORKER_MAX_SERIES``): every sample is scored, the detectors beyond the cap
    are forgotten (least recently used first), and the worker counts them."""
    prefix, n, cap = f"flood-{uuid.uuid4().hex[:6]}", 200, 20
    mine = lambda v: str(v.get("source", "")).startswith(prefix)  # noqa: E731
    predictions = reader("ml.predictions", mine)
    worker = workers("anomaly", DHARMA_WORKER_MAX_SERIES=str(cap))
    now = int(time.time() * 1000)
    for i in range(n):
        (sample,) = series_samples(f"{prefix}-{i:03d}", 1, now, seed=i)
        producer.produce("metrics.raw", sample["source"], sample)
    producer.flush()
    poll(lambda: len({p["source"] for p in predictions.poll()}) >= n, "every sample scored",
         timeout=90)
    poll(lambda: _capacity_evictions(worker) >= n - cap,
         "the detectors beyond the cap forgotten and counted", timeout=30,
         describe=lambda: f"{_capacity_evictions(worker)} forgotten")
