"""Detector state per series: live in memory, checkpointed to a changelog-backed table.

Writing a detector (a few KB) to the changelog on every sample would cost more
than scoring it, so each series is checkpointed at most every
``checkpoint_every_s`` seconds, and at once whenever its alert state changes
(so a restart never re-fires an episode).  After a crash a series resumes from
its last checkpoint: no new warm-up, at most a few seconds of learning replayed.

Checkpoints are pickles read back by a restricted unpickler that only builds
the detector's own classes and plain containers.
"""

from __future__ import annotations

import io
import pickle
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import EventT

from dharma.agents.anomaly.alerts import AlertState
from dharma.agents.anomaly.logic import SeriesDetector
from dharma.streams.app import bind_event
from dharma.streams.topics import METRICS_RAW

_SAFE_MODULES = ("dharma.agents.anomaly", "collections", "array", "math", "_collections")
_SAFE_BUILTINS = {"list", "dict", "set", "frozenset", "tuple", "float", "int", "bool",
                  "complex", "bytearray", "bytes", "str", "getattr", "object"}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in _SAFE_BUILTINS:
            return super().find_class(module, name)
        if module == "copyreg" and name == "_reconstructor":
            return super().find_class(module, name)
        if module.startswith(_SAFE_MODULES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint")


@dataclass
class SeriesState:
    """What the agent keeps per series."""

    detector: SeriesDetector
    alert: AlertState = field(default_factory=AlertState)


def dumps(state: SeriesState) -> bytes:
    """Compressed checkpoint of ``state``."""
    return zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)


def loads(blob: bytes) -> SeriesState:
    """Inverse of :func:`dumps`, refusing any class outside the detector's own."""
    state = _RestrictedUnpickler(io.BytesIO(zlib.decompress(blob))).load()
    if not isinstance(state, SeriesState):
        raise pickle.UnpicklingError(f"checkpoint holds {type(state).__name__}")
    return state


def detector_table(app: faust.App) -> faust.Table:
    """Checkpoints per series, co-partitioned with ``metrics.raw``."""
    return app.Table("detectors", default=None, key_type=str, value_type=bytes,
                     partitions=METRICS_RAW.partitions,
                     help="Anomaly detector and alert state per series (checkpoints).")


@dataclass
class _Entry:
    state: SeriesState
    event: EventT
    last_seen: float
    saved_at: float
    dirty: bool = False


class DetectorStore:
    """Live detectors, restored from and checkpointed to ``table``."""

    def __init__(self, table: faust.Table, factory: Callable[[], SeriesDetector],
                 checkpoint_every_s: float = 10.0, idle_ttl_s: float = 6 * 3600) -> None:
        self.table, self.factory = table, factory
        self.checkpoint_every_s, self.idle_ttl_s = checkpoint_every_s, idle_ttl_s
        self.live: dict[str, _Entry] = {}
        self.restored = 0

    def get(self, series: str, event: EventT) -> SeriesState:
        """The state of ``series`` (live, restored from its checkpoint, or new)."""
        entry = self.live.get(series)
        now = time.monotonic()
        if entry is None:
            blob = self.table.get(series)
            state = loads(blob) if blob else SeriesState(self.factory())
            self.restored += bool(blob)
            entry = self.live[series] = _Entry(state, event, now, saved_at=now)
        entry.event, entry.last_seen, entry.dirty = event, now, True
        return entry.state

    def checkpoint(self, force: set[str] | frozenset[str] = frozenset()) -> int:
        """Write due (or forced) dirty series to the table; how many were written."""
        now, written = time.monotonic(), 0
        for series, entry in self.live.items():
            due = now - entry.saved_at >= self.checkpoint_every_s
            if entry.dirty and (due or series in force):
                bind_event(entry.event)
                self.table[series] = dumps(entry.state)
                entry.saved_at, entry.dirty, written = now, False, written + 1
        return written

    def evict_idle(self) -> int:
        """Forget series idle for ``idle_ttl_s`` (memory and table); how many."""
        cutoff = time.monotonic() - self.idle_ttl_s
        idle = [s for s, e in self.live.items() if e.last_seen < cutoff]
        for series in idle:
            bind_event(self.live.pop(series).event)
            self.table.pop(series, None)
        return len(idle)

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget live state of revoked partitions (their checkpoints stay)."""
        for series in [s for s, e in self.live.items()
                       if e.event.message.partition in partitions]:
            del self.live[series]
