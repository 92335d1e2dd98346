"""Crash recovery of the anomaly worker: SIGKILL mid-stream, restart with the same app id.

Five series, one sample a minute, 400 samples ending now; series 0 shifts its
level by +30 (30 noise sigmas) from sample 260 on, an episode that spans the kill.
The stream is fed chunk by chunk (each chunk once its predictions are out) until
every series has a checkpoint past warm-up and the incident is firing; then 20
more steps are produced, the worker is killed with SIGKILL, the rest is produced
and a new worker of the same consumer group takes over.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from anomaly_helpers import (
    MINUTE_MS,
    TopicReader,
    checkpoints,
    firing_per_episode,
    series_samples,
)

from dharma.agents.anomaly.alerts import fingerprint

pytestmark = pytest.mark.integration

SERIES, STEPS, ONSET, SHIFT = 5, 400, 260, 30.0
METRIC = "cpu_utilization"
CHUNK = 5  # steps per chunk while feeding the first worker
WARMUP = 150  # DetectorConfig().warmup


def test_sigkill_restart_restores_detectors_scores_everything_and_fires_once(
        settings: Any, producer: Any, workers: Any, app_id: str, poll: Any) -> None:
    prefix = f"rec-{uuid.uuid4().hex[:6]}"
    sources = [f"{prefix}-{i}" for i in range(SERIES)]
    start = int(time.time() * 1000) - STEPS * MINUTE_MS
    streams = [series_samples(s, STEPS, start, shift=(ONSET, SHIFT) if i == 0 else None)
               for i, s in enumerate(sources)]
    incident = f"{sources[0]}|{METRIC}"
    mine = lambda v: v["source"].startswith(prefix)  # noqa: E731
    predictions = TopicReader(settings, "ml.predictions", mine)
    alerts = TopicReader(settings, "alerts.notifications", mine)

    def produce_steps(lo: int, hi: int) -> None:
        for step in range(lo, hi):
            for stream in streams:
                producer.produce("metrics.raw", stream[step]["source"], stream[step])
        producer.flush()

    def ids() -> set[str]:
        return {p["prediction_id"] for p in predictions.poll()}

    def ready_to_kill() -> bool:
        saved = checkpoints(settings, app_id)
        return (all(not saved[f"{s}|{METRIC}"].detector.warming_up for s in sources)
                and saved[incident].alert.firing_since is not None)

    first = workers("anomaly")
    step = 0
    while True:  # feed the first worker until it has checkpointed every series
        produce_steps(step, step + CHUNK)
        step += CHUNK
        expected = {f"{s}|{METRIC}@{streams[0][step - 1]['ts']}" for s in sources}
        poll(lambda: expected <= ids(), f"predictions up to step {step}")
        if step >= ONSET + CHUNK and (step % 20 == 0 or step >= 330):
            try:
                if ready_to_kill():
                    break
            except KeyError:
                pass  # a series not checkpointed yet
        assert step < 340, "no checkpoint of every series (and of the firing incident) by step 340"
    kill_step = step
    produce_steps(kill_step, kill_step + 20)
    first.stop(signal.SIGKILL)
    assert first.proc is not None and first.proc.returncode == -signal.SIGKILL
    produce_steps(kill_step + 20, STEPS)

    workers("anomaly")
    produced = {f"{s['source']}|{METRIC}@{s['ts']}" for stream in streams for s in stream}
    poll(lambda: produced <= ids(), "every produced sample scored", timeout=90)
    alerts.poll(1.0)  # alerts of a batch are sent after its predictions

    by_id: dict[str, list[dict[str, Any]]] = {}
    for p in predictions.values:
        by_id.setdefault(p["prediction_id"], []).append(p)
    # (a) detectors restored: no copy of any prediction past warm-up is warming up,
    # in particular none scored by the restarted worker
    step_of = {f"{s['source']}|{METRIC}@{s['ts']}": i
               for stream in streams for i, s in enumerate(stream)}
    warming = sorted(step_of[pid] for pid, ps in by_id.items()
                     if step_of[pid] >= WARMUP and any(p["warming_up"] for p in ps))
    assert not warming, f"warming up again after the restart at steps {warming[:10]}"
    after_kill = [p for pid, ps in by_id.items() if step_of[pid] >= kill_step + 20 for p in ps]
    assert len(after_kill) >= SERIES * (STEPS - kill_step - 20)
    assert all(p["confidence"] == 1.0 for p in after_kill)
    # (b) every input event scored at least once (replays may score some twice)
    assert produced <= set(by_id)
    # (c) the incident fired once: one episode, one firing notification for it
    firing = [a for a in alerts.values if a["status"] == "firing"]
    incident_fp = fingerprint(sources[0], METRIC)
    episodes = {k: v for k, v in firing_per_episode(firing).items() if k[0] == incident_fp}
    assert len(episodes) == 1, f"incident episodes: {sorted(episodes)}"
    (episode_start,) = {int(k[1]) for k in episodes}
    assert episode_start >= streams[0][ONSET]["ts"]
    sent = Counter((a["fingerprint"], a["labels"]["episode_start"]) for a in firing)
    assert all(n == 1 for n in sent.values()), f"an episode fired more than once: {sent}"
    predictions.close()
    alerts.close()
