"""``dharma bench soak``: the embedded stack under a steady load for minutes or hours.

Two loads, each on a fresh private stack, sampled every ``interval_s``: the
broker's CPU (% of one core) and resident memory, every worker's CPU and its
consumer group's lag, with the slope of each per 10 minutes (least squares over
the samples after the first, which holds start-up).

- ``anomaly``: an outside confluent-kafka producer (Confluent's
  ``AvroSerializer``, ``linger_ms`` as given) sends ``rate`` ``metrics.raw``
  events/s over ``series`` series into one anomaly worker; every event is
  timed from produce to its consumed prediction (p50/p99 overall and per
  interval: the first interval is the baseline of the same run), and counted
  (scored against produced).  The reader of predictions fetches with a 50 ms
  wait (a shorter one would itself starve on a long run, ``docs/broker.md``),
  which can add up to 25 ms at the tail; ``to_worker_send`` figures (produce
  to the worker's send of the prediction, from its timestamp) do not depend on
  the reader.
- ``pipeline``: what ``dharma up`` runs (the ingest, anomaly and trust workers,
  the generator at ``rate`` events/s and a live reader of predictions, alerts
  and dead letters).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from dharma.bench.anomaly import _LatencyProbe, _pace, _pct, _skip_to_end
from dharma.bench.anomaly import _wait_for as _wait
from dharma.bench.harness import bench_stack, start_worker, stop
from dharma.infra.stack.broker_load import group_lags, holdings
from dharma.infra.stack.manager import EmbeddedStack
from dharma.streams.settings import Settings

__all__ = ["run_anomaly", "run_pipeline", "slope_per_10_min"]

PIPELINE = ("ingest", "anomaly", "trust")
PROBE_FETCH_WAIT_MS = 50


def slope_per_10_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(seconds, value)`` points, per 10 minutes.

    >>> slope_per_10_min([(0, 1.0), (300, 2.0), (600, 3.0)])
    2.0
    >>> slope_per_10_min([(0, 5.0)]) is None
    True
    """
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return round(cov / var * 600, 3)


@dataclass
class Sample:
    """One interval: broker and worker CPU (% of one core), broker RSS (MB), lag per group."""

    t_s: float
    broker_cpu: float
    broker_rss_mb: float
    worker_cpu: dict[str, float]
    lag: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)


class Sampler:
    """Samples the broker and the workers every ``interval_s`` in a thread."""

    def __init__(self, settings: Settings, workers: dict[str, int], groups: list[str],
                 interval_s: float, extra: Callable[[], dict[str, Any]] | None = None) -> None:
        pid = next(s.pid for s in EmbeddedStack(settings).status() if s.name == "kafka")
        assert pid is not None, "the broker is not running"
        self.broker = psutil.Process(pid)
        self.workers = {name: psutil.Process(p) for name, p in workers.items()}
        self.groups, self.interval_s, self.extra = groups, interval_s, extra
        self.bootstrap = settings.kafka.bootstrap_servers
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.interval_s + 30)

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        try:
            times = proc.cpu_times()
            return float(times.user + times.system)
        except psutil.Error:
            return 0.0

    def _run(self) -> None:
        started = last = time.monotonic()
        cpu = {name: self._cpu(p) for name, p in [("broker", self.broker), *self.workers.items()]}
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            used = {name: self._cpu(p) for name, p in [("broker", self.broker),
                                                        *self.workers.items()]}
            share = {k: round(100 * (used[k] - cpu[k]) / (now - last), 1) for k in used}
            cpu, last = used, now
            self.samples.append(Sample(
                round(now - started, 1), share.pop("broker"),
                round(self.broker.memory_info().rss / 2**20, 1), share,
                group_lags(self.bootstrap, self.groups),
                self.extra() if self.extra else {}))

    def summary(self) -> dict[str, Any]:
        """Samples, slopes per 10 minutes of broker CPU and memory and of each lag, and
        what the broker holds at the end (records, lookup ms per topic: about 0.5 µs per batch)."""
        records, scan_ms = holdings(self.bootstrap)
        steady = self.samples[1:]
        slopes: dict[str, Any] = {
            "broker_cpu": slope_per_10_min([(s.t_s, s.broker_cpu) for s in steady]),
            "broker_rss_mb": slope_per_10_min([(s.t_s, s.broker_rss_mb) for s in steady]),
        }
        for group in self.groups:
            slopes[f"lag {group}"] = slope_per_10_min([(s.t_s, s.lag.get(group, 0))
                                                       for s in steady])
        return {"slope_per_10_min": slopes, "records_at_end": records,
                "lookup_ms_at_end": {t: round(ms, 1) for t, ms in scan_ms.items()},
                "max_lag": {g: max((s.lag.get(g, 0) for s in self.samples), default=0)
                            for g in self.groups},
                "samples": [asdict(s) for s in self.samples]}


@contextmanager
def _workers(env: dict[str, str], logdir: Path, topologies: tuple[str, ...],
             app_id: str) -> Iterator[dict[str, int]]:
    procs = {name: start_worker(name, env, logdir / f"worker-{name}.log", app_id)
             for name in topologies}
    try:
        yield {name: p.pid for name, p in procs.items()}
    finally:
        for proc in procs.values():
            stop(proc)


def _interval_latency(probe: _LatencyProbe) -> Callable[[], dict[str, Any]]:
    """Latency figures of the predictions consumed since the previous call."""
    seen = 0

    def figures() -> dict[str, Any]:
        nonlocal seen
        done, sends = sorted(probe.latencies[seen:]), sorted(probe.to_send[seen:])
        seen += len(done)
        return {"scored": len(done), "p50_ms": _pct(done, 0.5), "p99_ms": _pct(done, 0.99),
                "to_worker_send_p99_ms": _pct(sends, 0.99)}

    return figures


def run_anomaly(rate: int = 2_000, series: int = 1_000, seconds: float = 600.0,
                linger_ms: int = 5, interval_s: float = 60.0) -> dict[str, Any]:
    """An outside producer at ``rate`` events/s into one anomaly worker for ``seconds``."""
    from confluent_kafka import Producer

    from dharma.streams.admin import registry_client
    from dharma.streams.producer import AvroProducer

    app_id = f"soak{uuid.uuid4().hex[:6]}"
    logdir = Path(tempfile.mkdtemp(prefix=f"dharma-soak-{app_id}-"))
    with bench_stack() as (settings, env):
        _skip_to_end(settings, app_id)
        producer = AvroProducer(Producer({**settings.kafka.confluent_config(),
                                          "linger.ms": linger_ms}), registry_client(settings))
        probe = _LatencyProbe(settings, fetch_wait_ms=PROBE_FETCH_WAIT_MS)
        with _workers(env, logdir, ("anomaly",), app_id) as pids:
            _pace(producer, probe, series // 2, 2.0, series)  # group joins, series created
            _wait(lambda: not probe.sent, 60)
            probe.latencies.clear()
            probe.to_send.clear()
            with Sampler(settings, pids, [f"{app_id}-anomaly"], interval_s,
                         _interval_latency(probe)) as sampler:
                started = time.monotonic()
                _pace(producer, probe, rate, seconds, series)
                sent_s = time.monotonic() - started
                _wait(lambda: not probe.sent, 60)
            probe.close()
        summary = sampler.summary()
    lat, sends = sorted(probe.latencies), sorted(probe.to_send)
    return {"offered_events_per_s": rate, "series": series, "seconds": seconds,
            "producer_linger_ms": linger_ms, "produced": int(rate * seconds),
            "achieved_events_per_s": round(rate * seconds / sent_s),
            "scored": len(lat), "unscored": len(probe.sent),
            "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99), "max_ms": _pct(lat, 1.0),
            "to_worker_send_p50_ms": _pct(sends, 0.5), "to_worker_send_p99_ms": _pct(sends, 0.99),
            **summary, "logs": str(logdir)}


def run_pipeline(rate: float = 200.0, seconds: float = 600.0, interval_s: float = 60.0,
                 days_per_hour: float = 0.05) -> dict[str, Any]:
    """``dharma up``'s workers, generator and live reader for ``seconds``."""
    import subprocess
    import sys

    from dharma.streams.tailer import Tailer
    from dharma.streams.topics import ALERTS, DEAD_LETTER_TOPICS, PREDICTIONS

    app_id = f"soak{uuid.uuid4().hex[:6]}"
    logdir = Path(tempfile.mkdtemp(prefix=f"dharma-soak-{app_id}-"))
    shown = [0]
    with bench_stack() as (settings, env), _workers(env, logdir, PIPELINE, app_id) as pids, \
            (logdir / "generate.log").open("wb") as log:
        generator = subprocess.Popen(
            [sys.executable, "-m", "dharma.cli", "generate", "--rate", str(rate),
             "--duration", str(seconds), "--days", str(days_per_hour * 24), "--quiet",
             "--labels-dir", str(logdir / "labels")],
            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        topics = [PREDICTIONS.name, ALERTS.name, *(t.name for t in DEAD_LETTER_TOPICS)]
        with Tailer(settings, topics) as tailer, \
                Sampler(settings, pids, [f"{app_id}-{t}" for t in PIPELINE], interval_s,
                        lambda: {"shown": shown[0]}) as sampler:
            while generator.poll() is None:
                shown[0] += len(tailer.poll(0.5))
        summary = sampler.summary()
    return {"rate": rate, "seconds": seconds, **summary, "logs": str(logdir)}


