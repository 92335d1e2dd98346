"""Table writes whose changelog records go through the :class:`Emitter` (librdkafka).

``table[key] = value`` makes Faust send one changelog record through its
aiokafka producer, tens of microseconds of Python per write: more than the
whole decision of a trust event.  :class:`TableWriter` updates the table's
local store and queues the record on the same changelog partition (the
partition of the event being processed), with the agent's other outputs.
Those are flushed before the batch is acknowledged, so a write is durable no
later than the offsets that produced it, as with Faust's own producer.

Our tables are raw-bytes tables
(:func:`~dharma.streams.checkpoint.checkpoint_table`): keys and values go to
the changelog as the bytes given, and come back from it as bytes, for the
reader to decode and validate.  Faust decodes nothing, so no record on the
topic can make its recovery fail.

All writes to one table must go through one writer: records of two producers
to the same key have no order.  Recovery is Faust's: a restarted worker
replays the changelog into the table.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import EventT

from dharma.streams.emitter import SupportsEmit
from dharma.streams.faust_fork.store import recovered_partition

__all__ = ["TableWriter"]


class TableWriter:
    """Set and delete keys of the raw-bytes ``table``, sending its changelog records with
    ``emitter``."""

    def __init__(self, table: faust.Table, emitter: SupportsEmit) -> None:
        if (table.key_serializer, table.value_serializer) != ("raw", "raw"):
            raise ValueError(f"table {table.name} must be a checkpoint_table (raw bytes)")
        self.table, self.emitter = table, emitter
        self._topic: str | None = None

    @property
    def topic(self) -> str:
        """The table's changelog topic."""
        if self._topic is None:
            self._topic = str(self.table.changelog_topic.get_topic_name())
        return self._topic

    def set(self, key: bytes, value: Any, event: EventT, logged: bytes | None = None) -> None:
        """``table[key] = value``, logged to ``event``'s partition of the changelog as
        ``logged`` (default: ``value``, then bytes): the store may keep a decoded value
        while the log keeps its bytes."""
        self.table.data[key] = value
        self.emitter.emit(self.topic, key, value if logged is None else logged,
                          partition=event.message.partition)

    def delete(self, key: bytes, partition: int) -> None:
        """``del table[key]`` (if present), logged as a tombstone to ``partition`` of the
        changelog (the partition of the events that wrote it)."""
        if self.table.data.pop(key, None) is not None:
            self.emitter.emit(self.topic, key, None, partition=partition)

    def recovered_partition(self, key: bytes) -> int | None:
        """The changelog partition ``key`` was recovered from, if it was (Faust keeps
        it private: :mod:`dharma.streams.faust_fork.store`)."""
        return recovered_partition(self.table, key)
