"""The generator's ground truth through the real stack: incidents fire, quiet series stay quiet.

``SyntheticSource`` (seed 3, the default estate of 30 series, one sample every
10 s, no random incidents, deployments or incident events) runs 320 ticks ending
now, with one scripted incident of each category at tick 220 (after 220 ticks of
warm-up; the detector's own is 150 samples).  The metrics are produced with
``AvroProducer`` under source names unique to the run, the anomaly worker reads
them, and the alerts are compared with ``ground_truth()``.

Bound: an incident counts as detected when a ``firing`` alert for its source and
one of its metrics has ``onset <= alert ts <= onset + 10 samples`` (100 s of
event time).  Alerts follow the incident: each metric that fires for it fires
once, is not resolved while the incident lasts, and is resolved after its end
(the incidents end 20 to 60 ticks after onset, well before the last tick).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anomaly_helpers import TopicReader, to_ms

from dharma.bench.harness import start_worker, stop
from dharma.synthetic import (
    METRICS_TOPIC,
    IncidentConfig,
    Label,
    ScriptedIncident,
    SyntheticSource,
)

pytestmark = pytest.mark.integration

SEED, TICKS, ONSET, INTERVAL_MS = 3, 320, 220, 10_000
BOUND_SAMPLES = 10
SCRIPTED = (
    ScriptedIncident("cpu_spike", "app-server-01", ONSET, 20),
    ScriptedIncident("latency_shift", "db-primary-01", ONSET, 40),
    ScriptedIncident("traffic_drop", "web-server-01", ONSET, 40),
    ScriptedIncident("memory_leak", "web-server-02", ONSET, 60),
    ScriptedIncident("disk_filling", "queue-01", ONSET, 60),
)


@dataclass
class Run:
    """What one pass of the generator through the worker produced."""

    prefix: str
    labels: list[Label]
    series: set[tuple[str, str]]  # (generator source, metric)
    alerts: list[dict[str, Any]]  # every alert, sources without the run's prefix

    @property
    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["status"] == "firing"]


def _fixed_end_ms() -> int:
    """Yesterday 12:00 UTC: a fixed time of day (so the run is the same data every
    time, seasonality included) that is never in the future."""
    day = 86_400_000
    return (int(time.time() * 1000) // day) * day - day // 2


def _source(start_ms: int) -> SyntheticSource:
    incidents = IncidentConfig(incidents_per_day=0, chaos_per_day=0, scripted=SCRIPTED,
                               emit_incident_events=False)
    return SyntheticSource(SEED, start_ms, INTERVAL_MS, incidents=incidents,
                           deployments_per_day=0)


@pytest.fixture(scope="module")
def run(settings: Any, stack_env: dict[str, str], poll: Any,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Produce the run, let one anomaly worker score it all, collect the alerts."""
    from confluent_kafka import Producer

    from dharma.streams.admin import registry_client
    from dharma.streams.producer import AvroProducer

    prefix = f"gt{uuid.uuid4().hex[:6]}-"
    src = _source(_fixed_end_ms() - (TICKS - 1) * INTERVAL_MS)
    producer = AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))
    series, last_ts = set(), 0
    for batch in src.ticks(TICKS):
        for e in batch:
            if e.topic == METRICS_TOPIC:
                value = {**e.value, "source": prefix + e.value["source"]}
                producer.produce(METRICS_TOPIC, value["source"], value)
                series.add((e.value["source"], e.value["metric"]))
                last_ts = max(last_ts, value["ts"])
    producer.flush()
    mine = lambda v: str(v.get("source", "")).startswith(prefix)  # noqa: E731
    predictions = TopicReader(settings, "ml.predictions", mine)
    alerts = TopicReader(settings, "alerts.notifications", mine)
    log = tmp_path_factory.mktemp("ground-truth") / "worker.log"
    worker = start_worker("anomaly", stack_env, log, app_id=f"gt{uuid.uuid4().hex[:8]}")
    try:
        last = {f"{prefix}{s}|{m}@{last_ts}" for s, m in series}
        poll(lambda: last <= {p["prediction_id"] for p in predictions.poll()},
             "the last tick of every series scored", timeout=90)
        alerts.poll(1.0)
    finally:
        stop(worker)
        predictions.close()
        alerts.close()
        print(f"--- worker log (tail) ---\n{Path(log).read_text(errors='replace')[-4000:]}")
    sent = [{**a, "source": a["source"][len(prefix):]} for a in alerts.values]
    yield Run(prefix, src.ground_truth(), series, sent)


def test_every_injected_incident_fires_within_10_samples_of_its_onset(run: Run) -> None:
    assert sorted(label.category for label in run.labels) == sorted(i.category for i in SCRIPTED)
    late = {}
    for label in run.labels:
        delays = [(to_ms(a["ts"]) - label.onset_ms) // INTERVAL_MS for a in run.firing
                  if a["source"] == label.source and a["labels"]["metric"] in label.metrics
                  and to_ms(a["ts"]) >= label.onset_ms]
        if not delays or min(delays) > BOUND_SAMPLES:
            late[label.category] = (label.source, label.metrics, sorted(delays)[:3])
    assert not late, f"incidents not detected within {BOUND_SAMPLES} samples: {late}"


def test_quiet_series_stay_quiet(run: Run) -> None:
    labelled = {label.source for label in run.labels}
    quiet = sorted({(a["source"], a["labels"]["metric"]) for a in run.firing
                    if a["source"] not in labelled})
    assert not quiet, f"{len(quiet)} quiet series fired: {quiet}"


def test_alerts_follow_each_incident_firing_once_and_resolving_after_its_end(run: Run) -> None:
    wrong = {}
    for label in run.labels:
        for metric in label.metrics:
            sent = sorted(((to_ms(a["ts"]), a["status"]) for a in run.alerts
                           if a["source"] == label.source and a["labels"]["metric"] == metric
                           and to_ms(a["ts"]) >= label.onset_ms), key=lambda a: a[0])
            if not sent:
                continue  # the incident fired on its other metric
            during = [s for t, s in sent if t < label.end_ms]
            after = [s for t, s in sent if t >= label.end_ms]
            if during != ["firing"] or after[:1] != ["resolved"]:
                wrong[(label.category, metric)] = [
                    ((t - label.onset_ms) // INTERVAL_MS, s) for t, s in sent]
    assert not wrong, f"alerts not following their incident (ticks after onset): {wrong}"
