"""Per-key state live in memory, checkpointed to a changelog-backed Faust table.

Writing every update to the changelog costs a produce per event, more than
most agents' own work.  A :class:`CheckpointedTable` keeps values live and
writes a key's value at most every ``every_s`` seconds (or at once when
forced), always from inside the batch that changed it, to that event's
partition.  After a crash a key resumes from its last checkpoint and the
replayed events re-apply: state that ignores events not newer than what it has
seen (as the rolling statistics and detectors do) neither loses nor double
counts anything.

A checkpoint is read back by its decoder only: the table
(:func:`checkpoint_table`) hands keys and values to it as raw bytes, so no
record on the changelog topic, however malformed, can fail Faust's own
decoding and stall the table's recovery.  A checkpoint the decoder refuses
(:class:`~dharma.streams.errors.BrokenCheckpoint`) is logged and counted in
``dharma_checkpoints_rejected_total{table,reason}``, and its key starts afresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import faust
import orjson
from faust.types import EventT

from dharma.streams.changelog import TableWriter
from dharma.streams.errors import BrokenCheckpoint
from dharma.streams.metrics import PipelineMetrics

logger = logging.getLogger(__name__)

V = TypeVar("V")


def checkpoint_table(app: faust.App, name: str, partitions: int, help: str) -> faust.Table:
    """A table of checkpoints: keys and values kept and logged as raw bytes (the
    keys are JSON strings, as Faust writes a ``str`` key)."""
    return app.Table(  # type: ignore[return-value]  # Faust types it as TableT
        name, default=None, key_type=bytes, value_type=bytes, partitions=partitions,
        help=help)


def table_key(key: str) -> bytes:
    """The changelog key of ``key`` in a :func:`checkpoint_table`.

    >>> table_key("web-01|cpu")
    b'"web-01|cpu"'
    """
    return orjson.dumps(key)


@dataclass
class _Entry(Generic[V]):
    value: V
    event: EventT
    last_seen: float
    saved_at: float
    dirty: bool = False


class CheckpointedTable(Generic[V]):
    """Live values over ``table``, restored on first use, checkpointed on a cadence.

    Parameters
    ----------
    writer:
        Writes a :func:`checkpoint_table`.
    encode, decode:
        Value to checkpoint bytes and back; ``decode`` raises
        :class:`~dharma.streams.errors.BrokenCheckpoint` for bytes that are not one.
    factory:
        A fresh value for a key never seen.
    every_s:
        Longest time a changed value stays unsaved.
    idle_ttl_s:
        Keys untouched this long are forgotten (memory and table).
    metrics:
        Where refused checkpoints are counted.
    """

    def __init__(self, writer: TableWriter, encode: Callable[[V], bytes],
                 decode: Callable[[bytes], V], factory: Callable[[], V],
                 every_s: float = 5.0, idle_ttl_s: float = 6 * 3600,
                 metrics: PipelineMetrics | None = None) -> None:
        self.writer, self.table = writer, writer.table
        if (self.table.key_serializer, self.table.value_serializer) != ("raw", "raw"):
            raise ValueError(f"table {self.table.name} must be a checkpoint_table (raw bytes)")
        self.encode, self.decode, self.factory = encode, decode, factory
        self.every_s, self.idle_ttl_s = every_s, idle_ttl_s
        self.live: dict[str, _Entry[V]] = {}
        self._dormant: dict[bytes, float] = {}  # recovered keys no event touched: since when
        self.restored = 0
        self._rejected = None if metrics is None else metrics.checkpoints_rejected

    def get(self, key: str, event: EventT) -> V:
        """The value of ``key`` (live, restored from its checkpoint, or new); marks it changed."""
        entry = self.live.get(key)
        now = time.monotonic()
        if entry is None:
            value = self._restore(key)
            entry = self.live[key] = _Entry(value, event, now, saved_at=now)
        entry.event, entry.last_seen, entry.dirty = event, now, True
        return entry.value

    def _restore(self, key: str) -> V:
        stored = self.table.get(table_key(key))
        if stored is None:
            return self.factory()
        try:
            value = self.decode(stored)
        except BrokenCheckpoint as exc:
            return self._refuse(key, exc.reason, exc.detail)
        except Exception as exc:  # a decoder bug must not stop the stream either
            return self._refuse(key, "error", repr(exc))
        self.restored += 1
        return value

    def _refuse(self, key: str, reason: str, detail: str) -> V:
        self._count_refused(key, reason, detail)
        return self.factory()

    def _count_refused(self, key: str, reason: str, detail: str) -> None:
        logger.warning("checkpoint refused table=%s key=%r reason=%s detail=%s: starting afresh",
                       self.table.name, key, reason, detail[:200])
        if self._rejected is not None:
            self._rejected.labels(self.table.name, reason).inc()

    def reset(self, key: str, event: EventT) -> V:
        """Replace the value of ``key`` with a fresh one."""
        self.get(key, event)
        value = self.live[key].value = self.factory()
        return value

    def put(self, key: str, value: V, event: EventT) -> None:
        """Replace the value of ``key`` (for immutable values)."""
        self.get(key, event)
        self.live[key].value = value

    def checkpoint(self, force: set[str] | frozenset[str] = frozenset(),
                   limit: int | None = None) -> int:
        """Write forced keys, and changed keys whose checkpoint is due (at most ``limit``
        of those per call, oldest first, so checkpoints spread over batches instead of
        stalling one); how many were written."""
        now, written = time.monotonic(), 0
        for key in force:
            entry = self.live.get(key)
            if entry is not None and entry.dirty:
                self._save(key, entry, now)
                written += 1
        due = [k for k, e in self.live.items() if e.dirty and now - e.saved_at >= self.every_s]
        if limit is not None and len(due) > limit:
            due = sorted(due, key=lambda k: self.live[k].saved_at)[:limit]
        for key in due:
            self._save(key, self.live[key], now)
        return written + len(due)

    def checkpoint_all(self) -> int:
        """Write every changed key now (a graceful stop: nothing learned is left unsaved);
        how many were written."""
        return self.checkpoint(force=set(self.live), limit=0)

    def _save(self, key: str, entry: _Entry[V], now: float) -> None:
        self.writer.set(table_key(key), self.encode(entry.value), entry.event)
        entry.saved_at, entry.dirty = now, False

    def evict_idle(self, on_evict: Callable[[str, V], None] | None = None) -> int:
        """Forget keys idle for ``idle_ttl_s``; how many.  ``on_evict(key, value)`` runs
        before a key's checkpoint is deleted (e.g. to close what its value holds open).

        Keys recovered from the changelog that no event has touched since (series that
        went quiet before a restart) are dormant: they are forgotten ``idle_ttl_s`` after
        they were first seen dormant, their checkpoint decoded for ``on_evict`` first.
        """
        now = time.monotonic()
        cutoff = now - self.idle_ttl_s
        idle = [k for k, e in self.live.items() if e.last_seen < cutoff]
        for key in idle:
            entry = self.live.pop(key)
            if on_evict is not None:
                on_evict(key, entry.value)
            self.writer.delete(table_key(key), entry.event.message.partition)
        return len(idle) + self._evict_dormant(now, on_evict)

    def _evict_dormant(self, now: float, on_evict: Callable[[str, V], None] | None) -> int:
        live = {table_key(k) for k in self.live}
        stored = [k for k in self.table.data if k not in live]
        self._dormant = {k: self._dormant.get(k, now) for k in stored}
        due = [k for k, since in self._dormant.items() if now - since >= self.idle_ttl_s]
        for raw in due:
            del self._dormant[raw]
            partition = self.writer.recovered_partition(raw)
            key, value = self._dormant_value(raw)
            if on_evict is not None and key is not None and value is not None:
                on_evict(key, value)
            if partition is not None:
                self.writer.delete(raw, partition)
            else:  # not from the changelog: nothing was logged, forget it here only
                self.table.data.pop(raw, None)
        return len(due)

    def _dormant_value(self, raw: bytes) -> tuple[str | None, V | None]:
        """The key and decoded checkpoint of a dormant key, or Nones when unreadable."""
        try:
            key = orjson.loads(raw)
        except orjson.JSONDecodeError:
            key = None
        if not isinstance(key, str):
            self._count_refused(repr(raw[:80]), "format", "key is not a JSON string")
            return None, None
        try:
            return key, self.decode(self.table.data[raw])
        except BrokenCheckpoint as exc:
            self._count_refused(key, exc.reason, exc.detail)
        except Exception as exc:  # a decoder bug must not stop the timer either
            self._count_refused(key, "error", repr(exc))
        return key, None

    def release_partitions(self, partitions: set[int]) -> None:
        """Checkpoint, then forget, the keys of revoked partitions (their new owner
        restores them from the changelog)."""
        keys = {k for k, e in self.live.items() if e.event.message.partition in partitions}
        self.checkpoint(force=keys, limit=0)
        for key in keys:
            del self.live[key]
