"""An evicted idle series resolves its open alert (issue #10, item 12).

One series, one sample a minute, 260 samples ending now, shifted by +30 noise
sigmas from sample 200 to the end: the incident fires and is still going on when
the series stops reporting.  The worker forgets series idle for 3 s
(``DHARMA_WORKER_SERIES_IDLE_TTL_S``); before forgetting this one it must send
the episode's ``resolved`` alert, dated at the last sample, with the id the pure
alert logic gives the same samples (so a repeated eviction after a crash sends
the same notification).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from anomaly_helpers import MINUTE_MS, offline_alerts, series_samples, to_ms

from dharma.agents.anomaly.alerts import AlertPolicy, resolve_idle

pytestmark = pytest.mark.integration

N, ONSET = 260, 200


def test_an_idle_series_with_an_open_episode_is_resolved_when_it_is_forgotten(
        producer: Any, workers: Any, reader: Any, poll: Any) -> None:
    source = f"idle-{uuid.uuid4().hex[:6]}"
    samples = series_samples(source, N, int(time.time() * 1000) - N * MINUTE_MS, seed=3,
                             shift=(ONSET, 30.0))
    sent, state = offline_alerts(samples)
    assert [a["status"] for a in sent][:1] == ["firing"] and state.firing_since is not None
    expected = resolve_idle(state, AlertPolicy())
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
    expected = resolve_idle(state, AlertPolicy())
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
