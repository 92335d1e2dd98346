"""``dharma bench anomaly``: cost, throughput and latency of the anomaly topology.

One run against a private stack (:func:`~dharma.bench.harness.bench_stack`):

1. detector cost in process: µs per point for one series, memory per series
   with 10,000 live (:func:`~dharma.bench.anomaly_cost.measure_cost`);
2. ceilings on the same Avro stream (``events`` samples over 1,000 series): a
   bare confluent-kafka consumer, undecoded and decoded, and a Faust agent that
   only consumes and decodes (:mod:`dharma.bench.faust_baseline`);
3. end-to-end events/s of one anomaly worker with 1,000 and with 10,000 series,
   and of two workers sharing an app id (predictions counted on
   ``ml.predictions`` from its offsets, by :func:`~dharma.bench.harness.steady_rate`);
4. p50/p99 latency from produce to consumed prediction at a fixed offered load,
   first on the fresh broker, then again after the throughput runs (the
   embedded broker's memory store slows down as it retains data: Tansu, not
   the worker; real Kafka does not).

Each worker run reads only its own stream: the end of ``metrics.raw`` is
committed as its group's offsets before it starts.  Workers run one after the
other (the machine's cores are not shared between them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from dharma.bench.anomaly_cost import measure_cost
from dharma.bench.harness import (
    bare_consumer_rate,
    bench_stack,
    end_offsets,
    metric_samples,
    produce,
    skip_to_end,
    start_worker,
    steady_rate,
    stop,
)
from dharma.streams.admin import registry_client
from dharma.streams.codec import AvroWire
from dharma.streams.producer import AvroProducer
from dharma.streams.settings import Settings
from dharma.streams.topics import METRICS_RAW, PREDICTIONS

__all__ = ["run"]

MINUTE_MS = 60_000


def _skip_to_end(settings: Settings, app_id: str) -> None:
    """Commit the end of ``metrics.raw`` for the anomaly group of ``app_id``."""
    skip_to_end(settings, f"{app_id}-anomaly", METRICS_RAW.name)


class _PredictionCounter:
    """Counts (undecoded) messages written to ``ml.predictions`` after its creation."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = Consumer({**settings.kafka.confluent_config(),
                                   "group.id": "dharma-bench-count", "enable.auto.commit": False})
        self._consumer.assign(end_offsets(settings, PREDICTIONS.name))
        self.n = 0

    def __call__(self) -> int:
        while batch := self._consumer.consume(10_000, 0.05):
            self.n += sum(1 for msg in batch if not msg.error())
        return self.n

    def close(self) -> None:
        self._consumer.close()


def _series_samples(n: int, series: int, tag: str, start_ms: int | None = None
                    ) -> Iterator[tuple[str, dict[str, Any]]]:
    """``metric_samples`` with sources renamed by ``tag`` (new series for a new run)."""
    for key, value in metric_samples(n, series):
        source = f"{tag}-{key}"
        yield source, {**value, "source": source}


def _worker_rate(settings: Settings, env: dict[str, str], logdir: Path, n: int,
                 processes: int = 1, records: Iterator[tuple[str, Any]] | None = None
                 ) -> dict[str, Any]:
    """Predictions/s of ``processes`` anomaly workers (one app id) over ``n`` events.

    With ``records``, the workers' group skips what is already in ``metrics.raw``
    and the records are produced (as a backlog) before the workers start;
    without, the workers read the topic from its beginning.
    """
    app_id = f"bench{uuid.uuid4().hex[:6]}"
    if records is not None:
        _skip_to_end(settings, app_id)
        produce(settings, METRICS_RAW.name, records)
    count = _PredictionCounter(settings)
    procs = [start_worker("anomaly", env, logdir / f"{app_id}-{i}.log", app_id)
             for i in range(processes)]
    try:
        rate, seen = steady_rate(count, n, timeout=180)
        rss = sum(_rss_mb(p.pid) for p in procs)
    finally:
        count.close()
        for proc in procs:
            stop(proc)
    return {"events_per_s": round(rate), "predictions": seen, "worker_rss_mb": round(rss, 1)}


def _rss_mb(pid: int) -> float:
    import psutil

    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return 0.0


def _faust_baseline(env: dict[str, str], log: Path, n: int, timeout: float = 120.0) -> float:
    """Events/s of a Faust agent that only consumes and decodes ``metrics.raw``."""
    app_id = f"bench{uuid.uuid4().hex[:6]}"
    out = log.with_suffix(".out")
    with out.open("wb") as stdout, log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dharma.bench.faust_baseline", "--topic", METRICS_RAW.name,
             "--count", str(n)], env={**os.environ, **env, "DHARMA_WORKER_APP_ID": app_id},
            stdout=stdout, stderr=stderr, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            text = out.read_bytes()
            if b'{"events"' in text:
                line = text[text.index(b'{"events"'):].split(b"\n")[0]
                return float(json.loads(line)["rate"])
            time.sleep(0.2)
    finally:
        stop(proc)
    return 0.0


class _LatencyProbe:
    """Consumes ``ml.predictions`` in a thread and times predictions of produced ids."""

    def __init__(self, settings: Settings, fetch_wait_ms: int = 10) -> None:
        self.sent: dict[str, float] = {}  # prediction id -> perf_counter at produce
        self.latencies: list[float] = []
        self.to_send: list[float] = []  # produce -> the worker's send (message timestamp)
        self._wire = AvroWire(registry_client(settings))
        self._consumer = Consumer({**settings.kafka.confluent_config(),
                                   "group.id": "dharma-bench-latency",
                                   "enable.auto.commit": False,
                                   "fetch.wait.max.ms": fetch_wait_ms})
        self._consumer.assign(end_offsets(settings, PREDICTIONS.name))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            # a short timeout: consume() waits until it has num_messages or the timeout ends
            for msg in self._consumer.consume(1000, 0.002):
                now = time.perf_counter()
                if msg.error():
                    continue
                value = self._wire.decode(PREDICTIONS.value_subject, msg.value())
                sent = self.sent.pop(str(value.get("prediction_id")), None)
                if sent is not None:
                    self.latencies.append(now - sent)
                    wall = time.time() - (now - sent)  # produce time on the wall clock
                    self.to_send.append(msg.timestamp()[1] / 1000 - wall)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


def _latency(settings: Settings, env: dict[str, str], logdir: Path, rate: int = 2_000,
             seconds: float = 15.0, series: int = 1_000) -> dict[str, Any]:
    """p50/p99 ms from produce to consumed prediction at ``rate`` events/s offered."""
    app_id = f"bench{uuid.uuid4().hex[:6]}"
    _skip_to_end(settings, app_id)
    proc = start_worker("anomaly", env, logdir / f"{app_id}.log", app_id)
    producer = AvroProducer(Producer({**settings.kafka.confluent_config(), "linger.ms": 1}),
                            registry_client(settings))
    probe = _LatencyProbe(settings)
    try:
        _pace(producer, probe, series // 2, 2.0, series)  # the group joins, series created
        _wait_for(lambda: not probe.sent, 60)
        probe.latencies.clear()
        probe.to_send.clear()
        _pace(producer, probe, rate, seconds, series)
        _wait_for(lambda: not probe.sent, 30)
    finally:
        probe.close()
        stop(proc)
    lat, send = sorted(probe.latencies), sorted(probe.to_send)
    return {"offered_events_per_s": rate, "events": len(lat) + len(probe.sent),
            "lost": len(probe.sent), "p50_ms": _pct(lat, 0.50), "p99_ms": _pct(lat, 0.99),
            "max_ms": _pct(lat, 1.0), "to_worker_send_p50_ms": _pct(send, 0.50),
            "to_worker_send_p99_ms": _pct(send, 0.99)}


def _pct(ordered: list[float], q: float) -> float | None:
    """The ``q`` quantile of ``ordered`` seconds, in ms."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def _pace(producer: AvroProducer, probe: _LatencyProbe, rate: int, seconds: float,
          series: int) -> None:
    """Produce ``rate`` events/s for ``seconds``, stamped at produce time."""
    started, i, total = time.perf_counter(), 0, int(rate * seconds)
    while i < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        for k in range(i, due):
            s = k % series
            source = f"lat-{s // 4:05d}"
            ts = int(time.time() * 1000)  # a series' sends are series/rate s apart
            value = {"source": source, "metric": f"m{s % 4}", "value": 50.0 + (k % 13),
                     "ts": ts, "labels": {}, "unit": None}
            probe.sent[f"{source}|m{s % 4}@{ts}"] = time.perf_counter()
            producer.produce(METRICS_RAW.name, source, value)
        producer.poll(0)
        i = due
        time.sleep(0.002)
    producer.flush(30)


def _wait_for(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)


def run(events: int = 60_000) -> dict[str, Any]:
    """All the anomaly figures of one run, as a dict."""
    figures: dict[str, Any] = {"cost": {k: round(v, 1) for k, v in measure_cost().items()}}
    logdir = Path(tempfile.mkdtemp(prefix="dharma-bench-anomaly-"))
    with bench_stack() as (settings, env):
        # first, on a fresh broker: the embedded broker's memory store slows down as it
        # retains data (measured again at the end, after the throughput runs)
        figures["latency"] = _latency(settings, env, logdir)
        produced = produce(settings, METRICS_RAW.name, metric_samples(events, 1_000))
        figures["ceilings"] = {
            "bare_consumer_undecoded_events_per_s": round(
                bare_consumer_rate(settings, METRICS_RAW.name, produced, decode=False)),
            "bare_consumer_decoded_events_per_s": round(
                bare_consumer_rate(settings, METRICS_RAW.name, produced)),
            "faust_decode_only_events_per_s": round(
                _faust_baseline(env, logdir / "baseline.log", produced)),
        }
        figures["anomaly_1k_series"] = _worker_rate(settings, env, logdir, produced)
        figures["anomaly_10k_series"] = _worker_rate(
            settings, env, logdir, events, records=_series_samples(events, 10_000, "b"))
        figures["anomaly_1k_series_2_workers"] = _worker_rate(
            settings, env, logdir, events, processes=2,
            records=_series_samples(events, 1_000, "c"))
        figures["latency_after_throughput_runs"] = _latency(settings, env, logdir)
    faust = figures["ceilings"]["faust_decode_only_events_per_s"]
    one = figures["anomaly_1k_series"]["events_per_s"]
    figures["ratio_1k_to_faust_decode_only"] = round(one / faust, 3) if faust else None
    figures["logs"] = str(logdir)
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
