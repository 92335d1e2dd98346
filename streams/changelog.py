"""Table writes whose changelog records go through the :class:`Emitter` (librdkafka).

``table[key] = value`` makes Faust send one changelog record through its
aiokafka producer, tens of microseconds of Python per write: more than the
whole decision of a trust event.  :class:`TableWriter` updates the table's
local store and queues the same record, serialised exactly as Faust would
(the table's key and value serializers), on the same changelog partition (the
partition of the event being processed), with the agent's other outputs.
Those are flushed before the batch is acknowledged, so a write is durable no
later than the offsets that produced it, as with Faust's own producer.

All writes to one table must go through one writer: records of two producers
to the same key have no order.  Recovery is Faust's: a restarted worker
replays the changelog into the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import faust
import orjson
from faust.types import EventT

from dharma.streams.emitter import Emitter

__all__ = ["TableWriter", "TypedTable"]

V = TypeVar("V")


class TableWriter:
    """Set and delete keys of ``table``, sending its changelog records with ``emitter``."""

    def __init__(self, table: faust.Table, emitter: Emitter) -> None:
        self.table, self.emitter = table, emitter
        self._serializers = table.app.serializers
        self._topic: str | None = None

    @property
    def topic(self) -> str:
        """The table's changelog topic."""
        if self._topic is None:
            self._topic = str(self.table.changelog_topic.get_topic_name())
        return self._topic

    def _key(self, key: Any) -> bytes | None:
        if self.table.key_serializer == "json" and isinstance(key, str):
            return orjson.dumps(key)  # what Faust's json codec writes, without its overhead
        return self._serializers.dumps_key(self.table.key_type, key,
                                           serializer=self.table.key_serializer)

    def _value(self, value: Any) -> bytes | None:
        if self.table.value_serializer == "json" and self.table.value_type is None:
            return orjson.dumps(value)
        return self._serializers.dumps_value(self.table.value_type, value,
                                             serializer=self.table.value_serializer)

    def set(self, key: Any, value: Any, event: EventT, logged: Any = None) -> None:
        """``table[key] = value``, logged to ``event``'s partition of the changelog (as
        ``logged`` when given: what the store holds may differ from what is logged)."""
        self.table.data[key] = value
        self.emitter.emit(self.topic, self._key(key),
                          self._value(value if logged is None else logged),
                          partition=event.message.partition)

    def delete(self, key: Any, partition: int) -> None:
        """``del table[key]`` (if present), logged as a tombstone to ``partition`` of the
        changelog (the partition of the events that wrote it)."""
        if self.table.data.pop(key, None) is not None:
            self.emitter.emit(self.topic, self._key(key), None, partition=partition)

    def recovered_partition(self, key: Any) -> int | None:
        """The changelog partition ``key`` was recovered from, if it was.

        Faust's memory store keeps it in ``_key_partition`` (private; pinned by
        ``tests/unit/test_faust_contract.py``) to drop the keys of partitions it no
        longer owns.
        """
        partitions = getattr(self.table.data, "_key_partition", {})
        found: int | None = partitions.get(key)
        return found


class TypedTable(Generic[V]):
    """A table holding typed values ``V`` in its in-memory store.

    A write keeps the value itself and logs ``encode(value)`` (a JSON-ready
    dict); a value recovered from the changelog is that dict: ``decode`` turns
    it into a ``V`` on its first read, and the store keeps the decoded value.
    """

    def __init__(self, writer: TableWriter, kind: type[V], encode: Callable[[V], Any],
                 decode: Callable[[Any], V]) -> None:
        self.writer, self.kind, self.encode, self.decode = writer, kind, encode, decode

    def get(self, key: Any) -> V:
        """The value of ``key`` (``decode(None)`` when absent)."""
        data = self.writer.table.data
        stored = data.get(key)
        if isinstance(stored, self.kind):
            return stored
        value = self.decode(stored)
        if stored is not None:
            data[key] = value  # the same value, decoded: nothing to log
        return value

    def set(self, key: Any, value: V, event: EventT) -> None:
        """Store ``value`` under ``key``, logged to ``event``'s changelog partition."""
        self.writer.set(key, value, event, self.encode(value))
