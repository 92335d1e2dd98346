"""Cost of the per-series anomaly detector: time per point, memory per series, and the
detector store's bookkeeping per batch as the number of live series grows.

``dharma bench anomaly`` calls :func:`measure_cost`. Nothing here runs at import.
"""

from __future__ import annotations

import gc
import math
import random
import time
import tracemalloc
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import faust

from dharma.agents.anomaly.codec import CheckpointCodec, SeriesState
from dharma.agents.anomaly.logic import make_detector
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import CheckpointedTable, checkpoint_table

__all__ = ["measure_cost"]

#: Points each of the many detectors sees before memory is measured.
WARM_POINTS = 300
#: Detectors really warmed up for the memory measure (the rest are copies).
WARM_DISTINCT = 50
#: Sampling interval of the synthetic series (5 minutes, in ms).
STEP_MS = 300_000


def _series(n: int, seed: int) -> list[dict[str, Any]]:
    """A daily-seasonal noisy metric with rare spikes, as detector inputs."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        daily = 10.0 * math.sin(2 * math.pi * i / 288)
        spike = 40.0 if rng.random() < 0.002 else 0.0
        out.append({"value": 50.0 + daily + rng.gauss(0, 1) + spike,
                    "timestamp": 1_700_000_000_000 + i * STEP_MS})
    return out


def _time_per_point(n_points: int) -> float:
    """Microseconds per ``score_one`` + ``learn_one`` on one series."""
    xs = _series(n_points, seed=1)
    det = make_detector()
    t0 = time.perf_counter()
    for x in xs:
        det.score_one(x)
        det.learn_one(x)
    return (time.perf_counter() - t0) / max(1, n_points) * 1e6


def _warm(n: int) -> list[Any]:
    """``n`` detectors, each fed ``WARM_POINTS`` points of its own series."""
    dets = []
    for k in range(n):
        det = make_detector()
        for x in _series(WARM_POINTS, seed=100 + k):
            det.score_one(x)
            det.learn_one(x)
        dets.append(det)
    return dets


def _best_us(run: Callable[[], object], repeat: int = 7) -> float:
    """Fastest of ``repeat`` runs of ``run``, in microseconds (the least disturbed one)."""
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best * 1e6


def _memory(n_series: int) -> dict[str, float]:
    """Checkpoint bytes, encode and decode time, and tracemalloc bytes per live series
    after warm-up.

    ``WARM_DISTINCT`` detectors are really warmed up; the ``n_series`` live ones
    are decoded from their checkpoints (a restore from a changelog, as a worker does),
    all allocated while tracemalloc runs, so the measure is of real live objects
    without feeding millions of points under the tracer.
    """
    codec = CheckpointCodec(make_detector)
    warm = [SeriesState(d) for d in _warm(min(WARM_DISTINCT, n_series))]
    blobs = [codec.encode(s) for s in warm]
    encode_us = _best_us(lambda: [codec.encode(s) for s in warm]) / len(warm)
    decode_us = _best_us(lambda: [codec.decode(b) for b in blobs]) / len(blobs)
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    live_states = [codec.decode(blobs[i % len(blobs)]) for i in range(n_series)]
    gc.collect()
    live, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del live_states
    return {"checkpoint_bytes_per_series": sum(map(len, blobs)) / len(blobs),
            "checkpoint_encode_us": encode_us, "checkpoint_decode_us": decode_us,
            "tracemalloc_bytes_per_series": (live - base) / max(1, n_series)}


class _NothingDue:
    """The store's emitter in :func:`_store_batch_us`: nothing is due there, so a
    changelog write is a bug of the benchmark."""

    def emit(self, topic: str, key: bytes | None, value: bytes | None,
             partition: int | None = None) -> None:
        raise AssertionError(f"no changelog write expected, got one to {topic}")


def _store_batch_us(n_keys: int, batch: int = 1000) -> float:
    """Microseconds of a detector store's bookkeeping for one batch of ``batch`` samples
    while ``n_keys`` series are live: a ``get`` per sample and the batch's ``checkpoint``
    call (all keys changed, none due).  The values are trivial, so this is the table's
    cost alone, the part that must not grow with the number of series."""
    app = faust.App("bench-store", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    writer = TableWriter(checkpoint_table(app, "bench", partitions=1, help="bench"),
                         _NothingDue())
    store = CheckpointedTable[int](writer, lambda _: b"", lambda _: 0, lambda: 0,
                                   every_s=3600.0, max_keys=n_keys)
    event: Any = SimpleNamespace(message=SimpleNamespace(partition=0))
    keys = [f"host-{i:06d}|cpu" for i in range(n_keys)]
    for key in keys:
        store.get(key, event)
    rounds = iter(range(10**9))

    def one_batch() -> None:
        start = next(rounds) * batch
        for j in range(start, start + batch):
            store.get(keys[j % n_keys], event)
        store.checkpoint(limit=50)

    return _best_us(one_batch)


def measure_cost(n_points: int = 20000, n_series: int = 10000) -> dict[str, float]:
    """Scoring cost per point (one series) and memory per tracked series.

    Parameters
    ----------
    n_points
        Points scored then learned by one detector for the timing.
    n_series
        Live detectors kept at once for the memory measure, each in the state
        reached after ``WARM_POINTS`` points (a day of 5-minute samples, so the
        daily and weekly profiles exist).

    Returns
    -------
    ``us_per_point`` (score + learn), ``checkpoint_bytes_per_series``,
    ``checkpoint_encode_us`` / ``checkpoint_decode_us`` (per series) and
    ``tracemalloc_bytes_per_series`` (live detector and alert state), the store's
    bookkeeping per batch of 1,000 samples with 1,000 and 100,000 series live
    (``store_batch_us_1k`` / ``_100k``), plus the sizes used.

    Examples
    --------
    >>> r = measure_cost(n_points=500, n_series=5)
    >>> r["checkpoint_bytes_per_series"] < 20_000, r["us_per_point"] > 0
    (True, True)
    """
    us = _time_per_point(n_points)
    store = {"store_batch_us_1k": _store_batch_us(1_000),
             "store_batch_us_100k": _store_batch_us(100_000)}
    return {"us_per_point": us, **_memory(n_series), **store, "n_points": float(n_points),
            "n_series": float(n_series), "warm_points": float(WARM_POINTS)}


if __name__ == "__main__":
    print(measure_cost())
