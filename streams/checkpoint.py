"""Per-key state live in memory, checkpointed to a changelog-backed Faust table.

Writing every update to the changelog costs a produce per event, more than
most agents' own work.  A :class:`CheckpointedTable` keeps values live and
writes a key's value at most every ``every_s`` seconds (or at once when
forced), always from inside the batch that changed it, to that event's
partition.  After a crash a key resumes from its last checkpoint and the
replayed events re-apply: state that ignores events not newer than what it has
seen (as the rolling statistics and detectors do) neither loses nor double
counts anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from faust.types import EventT

from dharma.streams.changelog import TableWriter

logger = logging.getLogger(__name__)

V = TypeVar("V")


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
        Writes the changelog-backed Faust table holding checkpoints.
    encode, decode:
        Value to table value and back.
    factory:
        A fresh value for a key never seen.
    every_s:
        Longest time a changed value stays unsaved.
    idle_ttl_s:
        Keys untouched this long are forgotten (memory and table).
    """

    def __init__(self, writer: TableWriter, encode: Callable[[V], Any],
                 decode: Callable[[Any], V], factory: Callable[[], V],
                 every_s: float = 5.0, idle_ttl_s: float = 6 * 3600) -> None:
        self.writer, self.table = writer, writer.table
        self.encode, self.decode, self.factory = encode, decode, factory
        self.every_s, self.idle_ttl_s = every_s, idle_ttl_s
        self.live: dict[str, _Entry[V]] = {}
        self.restored = 0

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
        stored = self.table.get(key)
        if stored is None:
            return self.factory()
        try:
            value = self.decode(stored)
        except Exception as exc:  # an unreadable checkpoint must not stop the stream
            logger.warning("checkpoint of key=%s unreadable (%r): starting afresh", key, exc)
            return self.factory()
        self.restored += 1
        return value

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

    def _save(self, key: str, entry: _Entry[V], now: float) -> None:
        self.writer.set(key, self.encode(entry.value), entry.event)
        entry.saved_at, entry.dirty = now, False

    def evict_idle(self, on_evict: Callable[[str, V], None] | None = None) -> int:
        """Forget keys idle for ``idle_ttl_s``; how many.  ``on_evict(key, value)`` runs
        before a key's checkpoint is deleted (e.g. to close what its value holds open)."""
        cutoff = time.monotonic() - self.idle_ttl_s
        idle = [k for k, e in self.live.items() if e.last_seen < cutoff]
        for key in idle:
            entry = self.live.pop(key)
            if on_evict is not None:
                on_evict(key, entry.value)
            self.writer.delete(key, entry.event)
        return len(idle)

    def release_partitions(self, partitions: set[int]) -> None:
        """Checkpoint, then forget, the keys of revoked partitions (their new owner
        restores them from the changelog)."""
        keys = {k for k, e in self.live.items() if e.event.message.partition in partitions}
        self.checkpoint(force=keys, limit=0)
        for key in keys:
            del self.live[key]
