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

Memory is bounded: at most ``max_keys`` keys are held, and a key idle for
``idle_ttl_s`` is forgotten; a forgotten key's checkpoint is deleted too, and
``dharma_table_keys_evicted_total{table,reason}`` counts it (``idle``,
``dormant``, ``capacity``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
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


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    event: EventT  # the latest event of the key: its checkpoint goes to that partition
    last_seen: float


class CheckpointedTable(Generic[V]):
    """Live values over ``table``, restored on first use, checkpointed on a cadence, at
    most ``max_keys`` of them in memory.

    Keys are held least recently used first, in two tiers: newcomers, and keys whose
    value is ``established`` (for a detector: warmed up).  Beyond ``max_keys`` the least
    recently used newcomer is forgotten, or, when there is none, the least recently
    used established key: a flood of keys that are seen once churns among the newcomers
    and never pushes out established ones.  Every cost is per key touched or forgotten:
    the keys due for a checkpoint wait in a queue ordered by when they changed, and
    idle keys are found at the front of the tiers, so no batch scans every key.

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
    max_keys:
        Keys held in memory at most; beyond it the least recently used is forgotten
        (memory and table), newcomers first.
    established:
        Whether a value has proved itself (it then leaves the newcomers).
    on_evict:
        Runs with ``(key, value)`` before a forgotten key's checkpoint is deleted
        (e.g. to close what its value holds open).
    metrics:
        Where refused checkpoints and forgotten keys are counted.
    """

    def __init__(self, writer: TableWriter, encode: Callable[[V], bytes],
                 decode: Callable[[bytes], V], factory: Callable[[], V],
                 every_s: float = 5.0, idle_ttl_s: float = 6 * 3600,
                 max_keys: int = 50_000, established: Callable[[V], bool] = lambda _: True,
                 on_evict: Callable[[str, V], None] | None = None,
                 metrics: PipelineMetrics | None = None) -> None:
        self.writer, self.table = writer, writer.table
        if (self.table.key_serializer, self.table.value_serializer) != ("raw", "raw"):
            raise ValueError(f"table {self.table.name} must be a checkpoint_table (raw bytes)")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys}")
        self.encode, self.decode, self.factory = encode, decode, factory
        self.every_s, self.idle_ttl_s, self.max_keys = every_s, idle_ttl_s, max_keys
        self.established, self.on_evict = established, on_evict
        self.live: OrderedDict[str, _Entry[V]] = OrderedDict()  # established keys, LRU first
        self.newcomers: OrderedDict[str, _Entry[V]] = OrderedDict()  # the others, LRU first
        self._dirty: OrderedDict[str, float] = OrderedDict()  # changed keys: since when
        self._dormant: dict[bytes, float] = {}  # recovered keys no event touched: since when
        self._warned_full_at = -math.inf
        self.restored = 0
        self._rejected = None if metrics is None else metrics.checkpoints_rejected
        self._evicted = None if metrics is None else metrics.table_keys_evicted

    def __len__(self) -> int:
        """Keys held in memory."""
        return len(self.live) + len(self.newcomers)

    def get(self, key: str, event: EventT) -> V:
        """The value of ``key`` (live, restored from its checkpoint, or new); marks it changed."""
        now = time.monotonic()
        entry = self.live.get(key)
        if entry is not None:
            self.live.move_to_end(key)
        else:
            entry = self.newcomers.pop(key, None)
            if entry is None:
                entry = _Entry(self._restore(key), event, now)
            tier = self.live if self.established(entry.value) else self.newcomers
            tier[key] = entry
            self._make_room(key, now)
        entry.event, entry.last_seen = event, now
        if key not in self._dirty:
            self._dirty[key] = now
        return entry.value

    def _held(self, key: str) -> _Entry[V]:
        entry = self.live.get(key)
        return entry if entry is not None else self.newcomers[key]

    def _make_room(self, keep: str, now: float) -> None:
        """Forget least recently used keys, newcomers first and never ``keep``, down to
        ``max_keys``."""
        while len(self) > self.max_keys:
            tier = next(t for t in (self.newcomers, self.live) if next(iter(t), keep) != keep)
            key = next(iter(tier))
            self._forget(key, tier.pop(key), "capacity")
            if now - self._warned_full_at >= 60.0:
                self._warned_full_at = now
                logger.warning("table=%s holds max_keys=%d: forgetting the least recently "
                               "used keys", self.table.name, self.max_keys)

    def _forget(self, key: str, entry: _Entry[V], reason: str) -> None:
        """Close what ``entry`` holds open, delete its checkpoint, count it."""
        self._dirty.pop(key, None)
        if self.on_evict is not None:
            self.on_evict(key, entry.value)
        self.writer.delete(table_key(key), entry.event.message.partition)
        self._count_evicted(reason)

    def _count_evicted(self, reason: str) -> None:
        if self._evicted is not None:
            self._evicted.labels(self.table.name, reason).inc()

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

    def checkpoint(self, force: set[str] | frozenset[str] = frozenset(),
                   limit: int | None = None) -> int:
        """Write forced keys, and changed keys whose checkpoint is due (at most ``limit``
        of those per call, longest changed first, so checkpoints spread over batches
        instead of stalling one); how many were written."""
        written = 0
        for key in force:
            if key in self._dirty:
                self._save(key, self._held(key))
                written += 1
        cutoff, due = time.monotonic() - self.every_s, 0
        while self._dirty and (limit is None or due < limit):
            key, since = next(iter(self._dirty.items()))  # changed longest ago
            if since > cutoff:
                break
            self._save(key, self._held(key))
            due += 1
        return written + due

    def checkpoint_all(self) -> int:
        """Write every changed key now (a graceful stop: nothing learned is left unsaved);
        how many were written."""
        return self.checkpoint(force=set(self._dirty), limit=0)

    def _save(self, key: str, entry: _Entry[V]) -> None:
        self.writer.set(table_key(key), self.encode(entry.value), entry.event)
        self._dirty.pop(key, None)

    def evict_idle(self) -> int:
        """Forget keys idle for ``idle_ttl_s``; how many (``on_evict`` runs for each).

        Keys recovered from the changelog that no event has touched since (series that
        went quiet before a restart) are dormant: they are forgotten ``idle_ttl_s`` after
        they were first seen dormant, their checkpoint decoded for ``on_evict`` first.
        """
        now = time.monotonic()
        cutoff, idle = now - self.idle_ttl_s, 0
        for tier in (self.newcomers, self.live):
            while tier:
                key = next(iter(tier))
                if tier[key].last_seen >= cutoff:
                    break
                self._forget(key, tier.pop(key), "idle")
                idle += 1
        return idle + self._evict_dormant(now)

    def _evict_dormant(self, now: float) -> int:
        held = {table_key(k) for tier in (self.live, self.newcomers) for k in tier}
        stored = [k for k in self.table.data if k not in held]
        self._dormant = {k: self._dormant.get(k, now) for k in stored}
        due = [k for k, since in self._dormant.items() if now - since >= self.idle_ttl_s]
        for raw in due:
            del self._dormant[raw]
            partition = self.writer.recovered_partition(raw)
            key, value = self._dormant_value(raw)
            if self.on_evict is not None and key is not None and value is not None:
                self.on_evict(key, value)
            if partition is not None:
                self.writer.delete(raw, partition)
            else:  # not from the changelog: nothing was logged, forget it here only
                self.table.data.pop(raw, None)
            self._count_evicted("dormant")
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
        for tier in (self.live, self.newcomers):
            keys = {k for k, e in tier.items() if e.event.message.partition in partitions}
            self.checkpoint(force=keys, limit=0)
            for key in keys:
                del tier[key]
