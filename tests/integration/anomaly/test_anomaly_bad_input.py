"""Bad input through the ingest and anomaly topologies: nothing crashes, nothing is poisoned.

Three clean series (i.i.d. noise, one sample a minute, ending now), each with
one kind of trouble after warm-up:

* ``nan``: NaN, +inf and -inf samples between good ones (the ingest topology
  dead-letters them; the anomaly topology skips them);
* ``disorder``: duplicated timestamps and pairs sent out of order;
* ``cadence``: 60 s sampling, then 10 s sampling.

The seeds are ones on which the pure detector raises no alert when the same
values arrive cleanly at a constant 60 s cadence (checked first, in process), so
an alert in the stream would be caused by the trouble.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import pytest
from anomaly_helpers import MINUTE_MS, offline_firings, series_samples

pytestmark = pytest.mark.integration

N = 320
TROUBLE = range(200, 280)  # steps where the trouble is injected
CADENCE_AT = 240  # the cadence series samples every 10 s from this step on
SEEDS = {"nan": 3, "disorder": 4, "cadence": 6}


def _with_non_finite(clean: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    out, bad_ts = [], []
    for i, sample in enumerate(clean):
        out.append(sample)
        if i in TROUBLE and i % 10 == 0:
            bad = {**sample, "ts": sample["ts"] + 30_000,
                   "value": (math.nan, math.inf, -math.inf)[(i // 10) % 3]}
            out.append(bad)
            bad_ts.append(bad["ts"])
    return out, bad_ts


def _disordered(clean: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = list(range(len(clean)))
    for i in TROUBLE[::10]:  # a pair sent out of order
        order[i], order[i + 1] = order[i + 1], order[i]
    out = []
    for j in order:
        out.append(clean[j])
        if j in TROUBLE and j % 10 == 5:  # its timestamp again, a slightly different value
            out.append({**clean[j], "value": clean[j]["value"] + 0.5})
    return out


def _cadence(source: str, start: int) -> list[dict[str, Any]]:
    samples = series_samples(source, N, start, seed=SEEDS["cadence"])
    for i in range(CADENCE_AT, N):
        samples[i]["ts"] = samples[CADENCE_AT - 1]["ts"] + (i - CADENCE_AT + 1) * 10_000
    return samples


def test_bad_values_disorder_and_cadence_change_neither_crash_nor_alert(
        settings: Any, producer: Any, workers: Any, reader: Any, poll: Any) -> None:
    prefix = f"bad-{uuid.uuid4().hex[:6]}"
    src = {kind: f"{prefix}-{kind}" for kind in SEEDS}
    start = int(time.time() * 1000) - N * MINUTE_MS
    clean = {k: series_samples(s, N, start, seed=SEEDS[k]) for k, s in src.items()}
    for kind, samples in clean.items():  # premise: quiet when clean
        assert not offline_firings(samples), f"seed of {kind} not quiet when clean"
    nan_stream, bad_ts = _with_non_finite(clean["nan"])
    streams = {"nan": nan_stream, "disorder": _disordered(clean["disorder"]),
               "cadence": _cadence(src["cadence"], start)}

    ingest, anomaly = workers("ingest"), workers("anomaly")
    mine = lambda v: str(v.get("source", "")).startswith(prefix)  # noqa: E731
    predictions = reader("ml.predictions", mine)
    alerts = reader("alerts.notifications", mine)
    dlq = reader("metrics.raw.dlq", lambda v: prefix.encode() in (v["original_key"] or b""))
    for samples in streams.values():
        for sample in samples:
            producer.produce("metrics.raw", sample["source"], sample)
    producer.flush()

    last = {f"{s[-1]['source']}|{s[-1]['metric']}@{s[-1]['ts']}" for s in streams.values()}
    poll(lambda: last <= {p["prediction_id"] for p in predictions.poll()},
         "the last sample of every series scored", timeout=90)
    poll(lambda: len(dlq.poll()) >= len(bad_ts), "the non-finite samples dead-lettered")
    alerts.poll(1.0)

    assert ingest.proc.poll() is None and anomaly.proc.poll() is None, "a worker died"
    assert {d["error_kind"] for d in dlq.values} == {"contract_violation"}
    ids = {p["prediction_id"] for p in predictions.values}
    series = {k: f"{src[k]}|cpu_utilization" for k in src}
    assert not {f"{series['nan']}@{ts}" for ts in bad_ts} & ids, "a non-finite value was scored"
    for kind, samples in streams.items():  # every good sample scored
        assert {f"{series[kind]}@{s['ts']}" for s in samples if s["ts"] not in bad_ts} <= ids
    tail_ids = {f"{series[kind]}@{s['ts']}" for kind, samples in streams.items()
                for s in samples[-20:]}
    tail = [p for p in predictions.values if p["prediction_id"] in tail_ids]
    assert tail and all(not p["warming_up"] and math.isfinite(p["anomaly_score"])
                        and p["expected"] is not None and math.isfinite(p["expected"])
                        for p in tail), "the model is poisoned or restarted its warm-up"
    fired = sorted({a["source"] for a in alerts.values if a["status"] == "firing"})
    assert not fired, f"alerts on clean series: {fired}"
