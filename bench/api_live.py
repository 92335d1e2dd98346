"""Live delivery for ``dharma bench api``: SSE subscribers while events flow, and the
pipeline's lag with and without them.

One anomaly worker (``dharma worker --topology anomaly``) runs from the end of
``metrics.raw``; each phase feeds it ``prediction_rate`` samples/s (so it emits as
many ``ml.predictions`` records) while the bench produces ``alert_rate`` alerts/s to
``alerts.notifications``, for ``seconds``.  The API's live feed carries both to its
subscribers.  Phases come in pairs, without and with ``subscribers`` subscribers of
``/api/v1/live`` (every kind), the order alternating between rounds.  Per phase:

- the worker's lag: its consumer group's lag sampled every second (records not yet
  committed; commits come every ``DHARMA_WORKER_COMMIT_INTERVAL_S``), and the time
  from producing a sample to reading its prediction (p50/p99);
- CPU (% of one core) of the API process, of the worker and of the subscribers' process
  (a stand-in for browsers elsewhere, on the same two cores here);
- with subscribers: events each received (per kind), events/s per subscriber and in
  total, and the events the API dropped for slow subscribers (its counter in
  ``/api/v1/pipeline/health``, ``live.dropped``).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from confluent_kafka import Producer

from dharma.bench.anomaly import _LatencyProbe, _pace, _pct
from dharma.bench.api_seed import alert_records
from dharma.bench.api_subscribers import KINDS, Subscribers
from dharma.bench.harness import skip_to_end, start_worker, stop
from dharma.infra.stack.broker_load import group_lags
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.settings import Settings
from dharma.streams.topics import ALERTS, METRICS_RAW

__all__ = ["LiveLoad", "measure_live"]

LIVE_PATH = "/api/v1/live?kinds=" + ",".join(KINDS)


class LiveLoad:
    """The load of one phase: samples to the anomaly worker, alerts straight to their
    topic, both paced; the worker's lag sampled meanwhile."""

    def __init__(self, settings: Settings, group: str, prediction_rate: int,
                 alert_rate: int, series: int) -> None:
        self.settings, self.group = settings, group
        self.prediction_rate, self.alert_rate, self.series = prediction_rate, alert_rate, series
        config = {**settings.kafka.confluent_config(), "linger.ms": 5}
        self._metrics = AvroProducer(Producer(config), registry_client(settings))
        self._alerts = AvroProducer(Producer(config), registry_client(settings))
        self.probe = _LatencyProbe(settings, fetch_wait_ms=10)

    def warm_up(self, seconds: float = 5.0) -> None:
        """Feed the worker until its group has joined and every series exists."""
        _pace(self._metrics, self.probe, self.prediction_rate, seconds, self.series)
        _wait(lambda: not self.probe.sent, 120)
        self.probe.latencies.clear()
        self.probe.sent.clear()

    def _send_alerts(self, seconds: float, sent: list[int]) -> None:
        n = int(self.alert_rate * seconds)
        started = time.monotonic()
        records = alert_records(n, seed=int(started), now_ms=int(time.time() * 1000),
                                prefix="live")
        for i, (key, record) in enumerate(records):
            time.sleep(max(0.0, started + i / self.alert_rate - time.monotonic()))
            self._alerts.produce(ALERTS.name, key, {**record, "ts": int(time.time() * 1000)})
            sent[0] += 1
        self._alerts.flush(30)

    def run(self, seconds: float) -> dict[str, Any]:
        """Produce for ``seconds``; the figures of the worker's lag meanwhile."""
        self.probe.latencies.clear()
        lags: list[int] = []
        done = threading.Event()
        sent_alerts = [0]

        def sample() -> None:
            while not done.wait(1.0):
                lags.append(group_lags(self.settings.kafka.bootstrap_servers,
                                       [self.group]).get(self.group, 0))

        threads = [threading.Thread(target=sample, daemon=True),
                   threading.Thread(target=self._send_alerts, args=(seconds, sent_alerts),
                                    daemon=True)]
        for thread in threads:
            thread.start()
        _pace(self._metrics, self.probe, self.prediction_rate, seconds, self.series)
        threads[1].join(seconds + 30)
        _wait(lambda: not self.probe.sent, 30)
        done.set()
        threads[0].join(30)
        latencies = sorted(self.probe.latencies)
        return {"samples": int(self.prediction_rate * seconds), "alerts": sent_alerts[0],
                "unscored": len(self.probe.sent),
                "lag_mean": round(statistics.fmean(lags), 1) if lags else None,
                "lag_max": max(lags, default=None),
                "prediction_p50_ms": _pct(latencies, 0.50),
                "prediction_p99_ms": _pct(latencies, 0.99)}

    def close(self) -> None:
        self.probe.close()


def _wait(check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)


def _cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system + times.children_user + times.children_system)


def _live_counters(base_url: str, token: str) -> dict[str, int]:
    response = httpx.get(f"{base_url}/api/v1/pipeline/health", timeout=30,
                         headers={"authorization": f"Bearer {token}"})
    response.raise_for_status()
    live: dict[str, int] = response.json().get("live") or {}
    return live


def _delivery(seen: list[dict[str, Any]], started: float, expected: int) -> dict[str, Any]:
    """Per subscriber and total events and events/s, from the flow's start; the smallest
    share of the load's alerts and predictions a subscriber received."""
    totals = [sum(s["counts"].values()) for s in seen]
    # the load's own kinds: the API's access decisions and the worker's alerts come too
    loads = [s["counts"].get("alert", 0) + s["counts"].get("prediction", 0) for s in seen]
    rates = [n / (s["last"] - started) for n, s in zip(totals, seen, strict=True)
             if n and s["last"] > started]
    last = max((s["last"] for s in seen), default=started)
    kinds: dict[str, int] = {}
    for s in seen:
        for kind, n in s["counts"].items():
            kinds[kind] = kinds.get(kind, 0) + n
    return {"connected": sum(1 for s in seen if s["status"] == 200),
            "statuses": sorted({s["status"] for s in seen}),
            "expected_per_subscriber": expected,
            "received_per_subscriber_min": min(totals, default=0),
            "received_per_subscriber_median": statistics.median(totals) if totals else 0,
            "delivered_share_min": round(min(loads, default=0) / expected, 4)
            if expected else None,
            "per_subscriber_per_s_median": round(statistics.median(rates), 1) if rates else 0,
            "total_per_s": round(sum(totals) / (last - started)) if last > started else 0,
            "received_by_kind": kinds}


@contextmanager
def _cpu_of(pids: dict[str, int], into: dict[str, Any]) -> Iterator[None]:
    before, started = {n: _cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
    yield
    elapsed = time.monotonic() - started
    into.update({f"{n}_cpu_percent": round(100 * (_cpu_seconds(p) - before[n]) / elapsed, 1)
                 for n, p in pids.items()})


def _phase(load: LiveLoad, base_url: str, token: str, subscribers: int, seconds: float,
           pids: dict[str, int]) -> dict[str, Any]:
    figures: dict[str, Any] = {"subscribers": subscribers}
    if not subscribers:
        with _cpu_of(pids, figures):
            figures.update(load.run(seconds))
        return figures
    readers = Subscribers(base_url, LIVE_PATH, token, subscribers).start()
    try:
        dropped = _live_counters(base_url, token).get("dropped", 0)
        figures["api_subscribers"] = _live_counters(base_url, token).get("subscribers")
        started = time.time()
        with _cpu_of({**pids, "subscribers": readers.pid}, figures):
            figures.update(load.run(seconds))
        _settle(readers)
    finally:
        seen = readers.stop()
    figures["dropped"] = _live_counters(base_url, token).get("dropped", 0) - dropped
    expected = figures["samples"] + figures["alerts"]
    figures["delivery"] = _delivery(seen, started, expected)
    return figures


def _settle(readers: Subscribers, quiet_s: float = 2.0, timeout_s: float = 60.0) -> None:
    """Until the subscribers have received nothing more for ``quiet_s``."""
    deadline, last, changed = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        now, n = time.monotonic(), readers.received()
        if n != last:
            last, changed = n, now
        elif now - changed >= quiet_s:
            return
        time.sleep(0.1)


def measure_live(settings: Settings, env: dict[str, str], log: Path, base_url: str,
                 token: str, api_pid: int, subscribers: int = 50, rounds: int = 1,
                 seconds: float = 20.0, prediction_rate: int = 1_000, alert_rate: int = 100,
                 series: int = 1_000) -> dict[str, Any]:
    """``rounds`` pairs of phases (without, with ``subscribers``), order alternating."""
    app_id = f"bench{uuid.uuid4().hex[:6]}"
    group = f"{app_id}-anomaly"
    skip_to_end(settings, group, METRICS_RAW.name)
    worker = start_worker("anomaly", env, log, app_id)
    load = LiveLoad(settings, group, prediction_rate, alert_rate, series)
    phases: list[dict[str, Any]] = []
    try:
        load.warm_up()
        pids = {"api": api_pid, "worker": worker.pid}
        for r in range(rounds):
            for n in ((0, subscribers) if r % 2 == 0 else (subscribers, 0)):
                phases.append(_phase(load, base_url, token, n, seconds, pids))
    finally:
        load.close()
        stop(worker)
    return {"prediction_rate": prediction_rate, "alert_rate": alert_rate,
            "seconds": seconds, "phases": phases, **_compare(phases)}


def _compare(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the lag figures without and with subscribers."""
    out: dict[str, Any] = {}
    for label, rows in (("without", [p for p in phases if not p["subscribers"]]),
                        ("with", [p for p in phases if p["subscribers"]])):
        for key in ("lag_mean", "prediction_p99_ms"):
            values = [p[key] for p in rows if p[key] is not None]
            out[f"{key}_{label}_subscribers"] = statistics.median(values) if values else None
    return out
