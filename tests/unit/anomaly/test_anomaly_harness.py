"""The anomaly agent's batch step driven in-process (``tests/harness.py``): its real
checkpointed store, no broker."""

from __future__ import annotations

from typing import Any

from harness import AnomalyHarness, event_at

from dharma.streams.alerting import Silence
from dharma.streams.checkpoint import table_key

T0 = 1_700_000_000_000


def shift(source: str, n: int = 320, at: int = 300) -> list[dict[str, Any]]:
    return [{"source": source, "metric": "cpu", "ts": T0 + i * 60_000,
             "value": 50.0 + (i % 3) + (30.0 if i >= at else 0.0), "labels": {}}
            for i in range(n)]


def test_an_alert_leaves_with_its_episode_checkpoint_and_a_replay_sends_nothing_again() -> None:
    harness = AnomalyHarness(checkpoint_every_s=3600.0)  # only forced checkpoints
    records = shift("web-01")
    first = harness.batch(records)
    assert [a["status"] for a in first.alerts] == ["firing"]
    assert (table_key("web-01|cpu"), ) == tuple(
        k for k, _ in harness.emitter.to("detectors-changelog"))  # forced with the alert
    # redelivered after a restart (up to 20 samples a series: docs/anomaly.md, "Replays")
    again = harness.batch(records[-15:])
    assert again.alerts == [] and again.changed == set()
    assert [p["prediction_id"] for _, (_, p) in again.predictions] == [
        f"web-01|cpu@{r['ts']}" for r in records[-15:]]


def test_a_silenced_episode_still_fires_in_state_but_sends_nothing() -> None:
    harness = AnomalyHarness()
    mute = Silence("s1", source="web-*", subject="*", kind="anomaly", ends_at_ms=T0 * 2)
    scored = harness.batch(shift("web-02"), silences=[mute], now_ms=T0)
    assert scored.alerts == [] and scored.changed == {"web-02|cpu"}
    assert harness.store.get("web-02|cpu", event_at(0, 0)).alert.firing_since == T0 + 300 * 60_000
