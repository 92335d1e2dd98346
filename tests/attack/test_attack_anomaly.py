"""Red-team findings on the anomaly detector and its alerts (pure: no stack).

Each test is evidence of a finding: its docstring gives the threat, the steps,
what happens today and what should happen.  They are strict xfails so the suite
stays green until the finding is fixed (then the xfail marker must go).

The per-sample step below is the agent's (``agents/anomaly/agent.py``: score, learn,
follow the episode); a sample reaches it only after ``validate_metric`` (finite value,
``ts`` at most ``DHARMA_WORKER_MAX_FUTURE_SKEW_S`` = 300 s ahead of the worker's clock).
"""

from __future__ import annotations

import random
from typing import Any

import faust
import pytest
from harness import RecordingEmitter, event_at

from dharma.agents.anomaly.logic import ANOMALY_THRESHOLD, follow_episode, make_detector
from dharma.agents.anomaly.state import DetectorStore, detector_table
from dharma.streams.alerting import AlertPolicy, Episode
from dharma.streams.changelog import TableWriter

T0 = 1_700_000_000_000
STEP_MS = 300_000


def shift_delay(spikes: dict[int, float], shift_at: int, seed: int = 1) -> int | None:
    """Samples from the onset of a +8 sigma shift (lasting 100 samples) on 50 +- 1 to its
    first score at or above the threshold; ``spikes`` replace samples by index."""
    rng, det = random.Random(seed), make_detector()
    for i in range(shift_at + 100):
        value = spikes.get(i, 50.0 + rng.gauss(0.0, 1.0) + (8.0 if i >= shift_at else 0.0))
        x = {"value": value, "timestamp": T0 + i * STEP_MS}
        score = det.score_one(x)
        det.learn_one(x)
        if i >= shift_at and score >= ANOMALY_THRESHOLD:
            return i - shift_at
    return None


@pytest.mark.parametrize("shift_at", [1000, 3000])
def test_two_outliers_do_not_blind_a_series(shift_at: int) -> None:
    """Threat: a producer (or a glitching exporter: counter wrap-arounds and unit bugs come
    in pairs) sends two extreme values on a series at 50 +- 1.

    Steps: 5-minute series; samples 300 and 301 are 5,000; a +8 sigma level shift starts
    at sample 1,000 (2.3 days later) or 3,000 (9 days later) and lasts 100 samples.

    Happens: never detected (score below 0.5 for all 100 samples; without the spikes it
    scores 1.0 at once).  ``RecentRange`` keeps the *second* largest value per block
    (``model/extremes.py``), so one spike is ignored but two become the range for
    ``2 x window`` = 17,280 samples (60 days at 5 minutes): the scale floor (1e-3 x range),
    the histogram's 32 bins (156 wide) and the spatial margin all follow it.  At 6,000 and
    10,000 samples later the shift is still seen 6-56 samples late; two spikes of 80
    (30 sigma) delay it too.

    Should: a handful of points cannot stretch the range (a breakdown point well above 2:
    e.g. the k-th extremes or quantiles of each block, or limits that forget spikes that
    do not recur); the shift is seen as quickly as without them (+-3 samples).
    """
    clean = shift_delay({}, shift_at)
    spiked = shift_delay({300: 5000.0, 301: 5000.0}, shift_at)
    assert clean is not None
    assert spiked is not None and abs(spiked - clean) <= 3


def alerts_with_forged_future_samples(every: int | None, seed: int = 1) -> list[tuple[str, Any]]:
    """A 10-second series at 50 +- 1 with a +8 sigma incident over samples 600-799; after
    every ``every``-th genuine sample a forged one at the normal level, dated 290 s ahead
    of it (inside the 300 s future skew).  The alerts sent: (status, sample)."""
    rng, det, state, policy = random.Random(seed), make_detector(), Episode(), AlertPolicy()
    sent: list[tuple[str, Any]] = []
    forged_ts = 0

    def feed(value: float, ts: int, tag: Any) -> None:
        nonlocal state
        x = {"value": value, "timestamp": ts}
        detail = det.score_detail(x)
        det.learn_one(x)
        state, alert = follow_episode(state, policy, "web-01", "cpu", ts, detail)
        if alert:
            sent.append((alert["status"], tag))

    for i in range(900):
        ts = T0 + i * 10_000
        feed(50.0 + rng.gauss(0.0, 1.0) + (8.0 if 600 <= i < 800 else 0.0), ts, i)
        if every and i >= 300 and i % every == 0:
            forged_ts = max(forged_ts + 1, ts + 290_000)
            feed(50.0 + rng.gauss(0.0, 1.0), forged_ts, f"forged after {i}")
    return sent


def test_future_dated_samples_cannot_hide_an_incident() -> None:
    """Threat: a producer that can write ``metrics.raw`` for a series hides an incident
    (e.g. the CPU of a host it is mining on) with a trickle of samples.

    Steps: after every 4th genuine sample, one forged sample at the normal level dated
    290 s after the genuine one (accepted: at most 300 s ahead); a 200-sample +8 sigma
    incident.

    Happens: no alert at all (without the forged samples: firing at its first sample,
    resolved after it).  Each forged sample moves the series' clock 290 s ahead, so the
    next genuine samples are ``late``: scored but neither learned nor followed by the
    episode (``detector.py``: ``t <= self._clock.last``; ``logic.follow_episode`` ignores
    LATE); the clock is reset only after 5 late samples in a row, and the next forged
    sample arrives first.  With one forged sample per 5 genuine ones the incident fires
    20 samples late and is *resolved* 100 samples before it ends (next test).

    Should: lateness cannot be bought with one sample: e.g. a sample dated ahead of the
    worker's clock by more than a few cadences does not move the series' clock (or is
    refused for the detector), and an out-of-order sample that is not a replay (its ts
    was never seen) is still followed by the alert episode.
    """
    assert alerts_with_forged_future_samples(None)[0] == ("firing", 600)
    assert ("firing", 600) in alerts_with_forged_future_samples(4)


def test_future_dated_samples_cannot_resolve_an_ongoing_incident() -> None:
    """Threat: as above, one forged sample after every 5th genuine one.

    Happens: ``resolved`` is sent at sample 700, 100 samples before the incident ends
    (samples 600-799), on the forged normal-looking samples alone: the genuine anomalous
    samples are ``late`` and do not reset the quiet period.

    Should: no ``resolved`` while the genuine samples are still anomalous.
    """
    sent = alerts_with_forged_future_samples(5)
    early = [tag for status, tag in sent if status == "resolved" and _before(tag, 800)]
    assert early == []


def _before(tag: Any, index: int) -> bool:
    position = tag if isinstance(tag, int) else int(str(tag).rsplit(" ", 1)[-1])
    return position < index


def test_subnormal_values_do_not_crash_a_flat_series() -> None:
    """Threat: most error counters, queue lengths and 5xx rates sit at exactly 0; a producer
    sends two samples of 5e-324 (the smallest float: finite, so a valid sample).

    Steps: 300 samples of 0.0, then 5e-324 twice, 20 zeros, then ordinary values (1.0).

    Happens: ``ZeroDivisionError`` in ``ValueHistogram._spread`` (``model/histogram.py``:
    the old bins' width ``(hi - lo) / bins`` underflows to 0) at the first 1.0.  The agent
    catches it and ``store.reset``s the series (``agent.py``, ``score``): the detector
    warms up again (150 samples capped at 0.25) and the series' ``Episode`` is replaced
    by a fresh one, so an open episode is dropped without ``resolved`` (the alert stays
    firing downstream for ever).  Repeating the pair every 150 samples keeps the series
    in warm-up for good.

    Should: any finite value is handled (a zero width is no span: treat it as a point
    mass), and a reset of a broken detector keeps (or resolves) the alert episode.
    """
    det = make_detector()
    values = [0.0] * 300 + [5e-324, 5e-324] + [0.0] * 20 + [1.0] * 20
    for i, value in enumerate(values):
        x = {"value": value, "timestamp": T0 + i * 60_000}
        det.score_detail(x)
        det.learn_one(x)


def test_a_flood_of_new_series_does_not_grow_memory_without_bound() -> None:
    """Threat: a producer sends one sample each for a flood of distinct (source, metric)
    names (a label-less cardinality bomb: ``host-000001``, ``host-000002``, ...).

    Steps: a ``DetectorStore`` as the agent builds it; 6,000 new series, one sample each.

    Happens: 6,000 live detectors, each about 3.4 KB after one sample (tracemalloc; 9.4 KB
    once warm), kept for ``DHARMA_WORKER_SERIES_IDLE_TTL_S`` (6 h) and checkpointed to the
    changelog (3.1 KB each): a 60-byte record buys ~3.4 KB of worker memory for 6 hours,
    so 1 M records (a minute of a modest producer) is 3.4 GB and the worker is OOM-killed.
    Every batch also scans all live entries for due checkpoints
    (``CheckpointedTable.checkpoint``), so per-batch cost grows with the flood.

    Should: a bounded number of live series (a setting), new series beyond it refused or
    evicted least-recently-used with a counter, and a one-sample series costs little
    until it proves itself (e.g. allocated after a few samples).
    """
    app = faust.App("t-attack-series", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    store = DetectorStore(TableWriter(detector_table(app), emitter=RecordingEmitter()),
                          make_detector)
    flood = 6_000
    for i in range(flood):
        state = store.get(f"host-{i:06d}|cpu", event_at(0, i))
        x = {"value": 1.0, "timestamp": T0}
        state.detector.score_detail(x)
        state.detector.learn_one(x)
    assert len(store.live) < flood
