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
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust

from dharma.agents.anomaly.alerts import AlertState
from dharma.agents.anomaly.logic import SeriesDetector
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import CheckpointedTable
from dharma.streams.topics import METRICS_RAW

#: Bump when the detector's state layout changes: older checkpoints are then ignored.
CHECKPOINT_VERSION = "detector-2"

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
    """Compressed checkpoint of ``state``, tagged with the detector's code version."""
    body = pickle.dumps((CHECKPOINT_VERSION, state), protocol=pickle.HIGHEST_PROTOCOL)
    return zlib.compress(body, 1)


def loads(blob: bytes) -> SeriesState:
    """Inverse of :func:`dumps`, refusing any class outside the detector's own and
    checkpoints of another detector version (the series then warms up afresh)."""
    loaded = _RestrictedUnpickler(io.BytesIO(zlib.decompress(blob))).load()
    if not (isinstance(loaded, tuple) and len(loaded) == 2 and isinstance(loaded[1], SeriesState)):
        raise pickle.UnpicklingError("not a detector checkpoint")
    if loaded[0] != CHECKPOINT_VERSION:
        raise pickle.UnpicklingError(f"checkpoint of detector version {loaded[0]!r}, "
                                     f"this is {CHECKPOINT_VERSION!r}")
    return loaded[1]


def detector_table(app: faust.App) -> faust.Table:
    """Checkpoints per series, co-partitioned with ``metrics.raw``."""
    return app.Table(  # type: ignore[return-value]  # Faust types it as TableT
        "detectors", default=None, key_type=str, value_type=bytes,
        partitions=METRICS_RAW.partitions,
        help="Anomaly detector and alert state per series (checkpoints).")


class DetectorStore(CheckpointedTable[SeriesState]):
    """Live detectors per series, checkpointed to ``table`` every ``checkpoint_every_s``."""

    def __init__(self, writer: TableWriter, factory: Callable[[], SeriesDetector],
                 checkpoint_every_s: float = 10.0, idle_ttl_s: float = 6 * 3600) -> None:
        super().__init__(writer, dumps, loads, lambda: SeriesState(factory()),
                         every_s=checkpoint_every_s, idle_ttl_s=idle_ttl_s)
