"""Per-key state in changelog-backed tables, read back only through a validating decoder.

Every table of ours is a :func:`checkpoint_table`: keys and values kept and
logged as raw bytes, so Faust decodes nothing and no record on the changelog
topic, however malformed (a key that is not a JSON string, invalid UTF-8, a
pickle), can fail its decoding and stall the table's recovery.  A key's
record is decoded when the key is first read; one the decoder refuses
(:class:`~dharma.streams.errors.BrokenCheckpoint`) is logged (``checkpoint
refused table=... key=... reason=...``) and counted in
``dharma_checkpoints_rejected_total{table,reason}``, and what it means is the
reader's decision.  Two readers:

* :class:`TypedTable`: typed values, every change logged as JSON (the
  records Faust wrote for a ``str``-keyed JSON table, so such changelogs
  recover unchanged), decoded strictly;
* :class:`CheckpointedTable`: values live in memory, checkpointed on a
  cadence.  Writing every update to the changelog costs a produce per event,
  more than most agents' own work, so a key's value is written at most every
  ``every_s`` seconds (or at once when forced), always from inside the batch
  that changed it, to that event's partition.  After a crash a key resumes
  from its last checkpoint and the replayed events re-apply: state that
  ignores events not newer than what it has seen (as the rolling statistics
  and detectors do) neither loses nor double counts anything.  A refused
  checkpoint starts its key afresh.  Memory is bounded: at most ``max_keys``
  keys are held, and a key idle for ``idle_ttl_s`` is forgotten; a forgotten
  key's checkpoint is deleted too, and
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
from typing import Any, Generic, TypeVar

import faust
import orjson
from faust.types import EventT
from pydantic import TypeAdapter, ValidationError

from dharma.streams.changelog import TableWriter
from dharma.streams.errors import BrokenCheckpoint, CheckpointFault
from dharma.streams.metrics import PipelineMetrics

__all__ = ["CheckpointedTable", "Refusals", "TypedTable", "checkpoint_table", "strict_json",
           "table_key"]

logger = logging.getLogger(__name__)

V = TypeVar("V")

#: Largest JSON record a :class:`TypedTable` decodes (a behaviour record is < 2 KB).
MAX_JSON_RECORD = 64 * 1024


def checkpoint_table(app: faust.App, name: str, partitions: int, help: str) -> faust.Table:
    """A table whose keys and values are kept and logged as raw bytes (the keys are JSON
    strings, as Faust writes a ``str`` key: :func:`table_key`)."""
    return app.Table(  # type: ignore[return-value]  # Faust types it as TableT
        name, default=None, key_type=bytes, value_type=bytes, partitions=partitions,
        help=help)


def table_key(key: str) -> bytes:
    """The changelog key of ``key`` in a :func:`checkpoint_table`.

    >>> table_key("web-01|cpu")
    b'"web-01|cpu"'
    """
    return orjson.dumps(key)


class Refusals:
    """Decodes the records of one table, logging and counting those refused."""

    def __init__(self, table: str, metrics: PipelineMetrics | None) -> None:
        self.table = table
        self._rejected = None if metrics is None else metrics.checkpoints_rejected

    def decoded(self, key: object, stored: Any, decode: Callable[[Any], V]) -> V:
        """``decode(stored)``; a refusal (or a decoder bug) is counted and raised as
        :class:`BrokenCheckpoint`."""
        try:
            return decode(stored)
        except BrokenCheckpoint as exc:
            broken = exc
        except Exception as exc:  # a decoder bug must not stop the stream either
            broken = BrokenCheckpoint("error", repr(exc))
        self.count(key, broken)
        raise broken

    def count(self, key: object, broken: BrokenCheckpoint) -> None:
        """Log and count one refused record."""
        logger.warning("checkpoint refused table=%s key=%r reason=%s detail=%s",
                       self.table, key, broken.reason, broken.detail[:200])
        if self._rejected is not None:
            self._rejected.labels(self.table, broken.reason).inc()


def strict_json(kind: type[V], check: Callable[[V], None] | None = None,
                max_bytes: int = MAX_JSON_RECORD) -> Callable[[Any], V]:
    """Decoder of a JSON record holding a ``kind`` (pydantic, strict: no type coercion,
    no NaN where the type forbids it, its own ranges), then ``check``-ed (raises
    ``ValueError``); :class:`BrokenCheckpoint` otherwise.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Point:
    ...     x: int
    >>> strict_json(Point)(b'{"x": 1}')
    Point(x=1)
    >>> strict_json(Point)(b'{"x": "1"}')
    Traceback (most recent call last):
    dharma.streams.errors.BrokenCheckpoint: invalid: x: Input should be a valid integer
    """
    adapter = TypeAdapter(kind)

    def decode(stored: Any) -> V:
        if not isinstance(stored, bytes):
            raise BrokenCheckpoint("format", f"a {type(stored).__name__}, not bytes")
        if len(stored) > max_bytes:
            raise BrokenCheckpoint("format", f"{len(stored)} bytes, more than {max_bytes}")
        try:
            value = adapter.validate_json(stored, strict=True)
            if check is not None:
                check(value)
        except ValidationError as exc:
            raise BrokenCheckpoint(*_fault(exc)) from None
        except ValueError as exc:
            raise BrokenCheckpoint("invalid", str(exc)) from None
        return value

    return decode


def _fault(exc: ValidationError) -> tuple[CheckpointFault, str]:
    """``format`` (not JSON, or not an object) or ``invalid``, and the first error."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    reason: CheckpointFault = "format" if first["type"] == "json_invalid" or not where \
        else "invalid"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return reason, f"{where or 'record'}: {first['msg']}{more}"


@dataclass(frozen=True, slots=True)
class _Refused:
    """What the store keeps for a key whose record was refused (read again: refused again,
    not counted again)."""

    fault: CheckpointFault
    detail: str


class TypedTable(Generic[V]):
    """Typed values ``V`` by ``str`` key over a :func:`checkpoint_table`, every change logged.

    A key's changelog record is ``encode(value)`` (a JSON-ready dict) as JSON, under
    :func:`table_key`.  A write keeps the value itself in the store; a record recovered
    from the changelog stays bytes until its key is first read, is then decoded once
    (:func:`strict_json` of ``kind``, then ``check``) and the store keeps the value.
    A record that does not decode is logged and counted once, and every read of its
    key raises :class:`BrokenCheckpoint` until a write replaces it.
    """

    def __init__(self, writer: TableWriter, kind: type[V], encode: Callable[[V], Any],
                 fresh: Callable[[], V], metrics: PipelineMetrics | None = None,
                 check: Callable[[V], None] | None = None) -> None:
        self.writer, self.kind, self.encode, self.fresh = writer, kind, encode, fresh
        self.decode = strict_json(kind, check)
        self.refusals = Refusals(writer.table.name, metrics)

    def get(self, key: str) -> V:
        """The value of ``key`` (``fresh()`` when absent); :class:`BrokenCheckpoint` when
        its record is refused."""
        data, stored_key = self.writer.table.data, table_key(key)
        stored = data.get(stored_key)
        if isinstance(stored, self.kind):
            return stored
        if stored is None:
            return self.fresh()
        if isinstance(stored, _Refused):
            raise BrokenCheckpoint(stored.fault, stored.detail)
        try:
            value = self.refusals.decoded(key, stored, self.decode)
        except BrokenCheckpoint as exc:
            data[stored_key] = _Refused(exc.reason, exc.detail)  # the same record: not logged
            raise
        data[stored_key] = value  # the same value, decoded: nothing to log
        return value

    def set(self, key: str, value: V, event: EventT) -> None:
        """Store ``value`` under ``key``, logged to ``event``'s changelog partition."""
        self.writer.set(table_key(key), value, event, orjson.dumps(self.encode(value)))


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
        self.refusals = Refusals(self.table.name, metrics)
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
            value = self.refusals.decoded(key, stored, self.decode)
        except BrokenCheckpoint:
            return self.factory()  # refused: the key starts afresh
        self.restored += 1
        return value

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
            self.refusals.count(raw[:80], BrokenCheckpoint("format", "key is not a JSON string"))
            return None, None
        try:
            return key, self.refusals.decoded(key, self.table.data[raw], self.decode)
        except BrokenCheckpoint:
            return key, None

    def release_partitions(self, partitions: set[int]) -> None:
        """Checkpoint, then forget, the keys of revoked partitions (their new owner
        restores them from the changelog)."""
        for tier in (self.live, self.newcomers):
            keys = {k for k, e in tier.items() if e.event.message.partition in partitions}
            self.checkpoint(force=keys, limit=0)
            for key in keys:
                del tier[key]
