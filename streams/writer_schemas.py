"""Writer schemas by id, for decoding: bounded caches, registry lookups off the event loop.

Every message names its writer schema by a 4-byte id, so whoever can produce to
a topic chooses which ids a worker looks up.  A flood of random ids must cost
neither a blocking registry call per record on the event loop nor memory
without bound.  So, in a worker:

* :meth:`WriterSchemas.resolve` runs before a batch is decoded: it reads the ids
  in the batch's headers and looks up the ones not cached, at most
  ``lookups_per_batch`` of them (the smallest first), concurrently in
  threads;
* :meth:`WriterSchemas.get` (called while decoding) answers from the caches
  only: an id that was not resolved is an ``unknown_schema`` rejection, kept in
  the dead-letter topic with its bytes;
* at most ``size`` found schemas are kept (the oldest goes first: only a
  registry's own schemas get in), and at most ``unknown_size`` unknown ids
  (404), each for ``unknown_ttl_s``, so an id registered later is seen.

A schema the registry has is vetted before it is used
(:mod:`dharma.streams.schema_vetting`): one that could make a tiny record cost
unbounded work is refused like an unknown one, and its records are
``undecodable``.

Command-line tools that decode a few records pass ``lookup_on_miss=True`` and
look ids up synchronously on first use.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from dharma.streams.errors import DecodeError
from dharma.streams.schema_vetting import SchemaRefused, vet_writer_schema

__all__ = ["Writer", "WriterSchemas", "strip_logical_types"]

_ID = struct.Struct(">I")
#: Registry lookups in flight at once while a batch is resolved.
_CONCURRENT_LOOKUPS = 4


def strip_logical_types(schema: Any) -> Any:
    """Copy of a schema without ``logicalType`` annotations (timestamps stay ints)."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    return schema


@dataclass
class Writer:
    """One writer schema: its JSON (logical types stripped), parsed form, and the reader
    schema to resolve it with per subject (None when it is our contract itself)."""

    json: Any
    parsed: Any
    readers: dict[str, Any] = field(default_factory=dict)


class WriterSchemas:
    """Bounded caches of writer schemas found in (and missing from) a registry.

    Parameters
    ----------
    registry:
        Client of a Confluent-compatible registry.
    parse:
        Schema JSON to the parsed form the codec uses.
    lookup_on_miss:
        Look an uncached id up synchronously in :meth:`get` (tools), or reject it
        (workers, which call :meth:`resolve` first).
    size, unknown_size, unknown_ttl_s:
        Entries of the found and unknown caches; how long an id stays unknown.
    lookups_per_batch:
        Most ids one :meth:`resolve` call looks up.
    """

    def __init__(self, registry: SchemaRegistryClient, parse: Callable[[Any], Any], *,
                 lookup_on_miss: bool = True, size: int = 1024, unknown_size: int = 4096,
                 unknown_ttl_s: float = 30.0, lookups_per_batch: int = 32) -> None:
        self.registry, self.parse = registry, parse
        self.lookup_on_miss = lookup_on_miss
        self.lookups_per_batch = lookups_per_batch
        self.size = size
        # a plain dict: get() is on every decode, and a dict lookup is the cheapest there is
        self.found: dict[int, Writer] = {}
        # ids the registry does not have, or whose schema is refused: the rejection to give
        self.unknown: TTLCache[int, DecodeError] = TTLCache(maxsize=unknown_size,
                                                            ttl=unknown_ttl_s)
        self.failed: dict[int, str] = {}  # lookups of the last resolve() that failed, and why

    def add(self, schema_id: int, schema_json: Any) -> Writer:
        """Cache ``schema_json`` (logical types already stripped) as ``schema_id``."""
        if schema_id not in self.found and len(self.found) >= self.size:
            del self.found[next(iter(self.found))]
        writer = self.found[schema_id] = Writer(schema_json, self.parse(schema_json))
        self.unknown.pop(schema_id, None)
        return writer

    def get(self, schema_id: int) -> Writer:
        """The cached writer of ``schema_id``; :class:`DecodeError` if it is unknown or, in
        a worker, was not resolved for this batch."""
        writer = self.found.get(schema_id)
        if writer is not None:
            return writer
        refused = self.unknown.get(schema_id)
        if refused is not None:
            raise DecodeError(refused.error_kind, refused.reason)
        if not self.lookup_on_miss:
            reason = self.failed.get(schema_id) or (
                f"schema id {schema_id} was not looked up: more than "
                f"{self.lookups_per_batch} uncached ids in its batch")
            raise DecodeError("unknown_schema", reason)
        return self._store(schema_id, self._fetch(schema_id))

    async def resolve(self, payloads: Iterable[bytes | None]) -> None:
        """Look up the uncached schema ids of wire-format ``payloads`` (at most
        ``lookups_per_batch``), in threads, so decoding them does not block."""
        self.failed.clear()
        seen: set[int] = set()
        for data in payloads:
            if data is None or len(data) < 5 or data[0] != 0:
                continue  # not wire format: decoding rejects it without a lookup
            (sid,) = _ID.unpack_from(data, 1)
            if sid not in self.found:
                seen.add(sid)
        # The smallest first: a registry numbers schemas in the order they are
        # registered, so a new genuine id is the smallest one not yet seen, while
        # forged ones, to be unknown, must lie above every registered id.  How often
        # an id recurs is the producer's to choose, so it decides nothing.
        wanted = sorted(sid for sid in seen if sid not in self.unknown)[:self.lookups_per_batch]
        if not wanted:
            return
        gate = asyncio.Semaphore(_CONCURRENT_LOOKUPS)

        async def lookup(sid: int) -> None:
            try:
                async with gate:
                    found = await asyncio.to_thread(self._fetch, sid)
                self._store(sid, found)
            except DecodeError:
                pass  # now in the unknown cache
            except Exception as exc:  # the registry is unreachable: try again next batch
                self.failed[sid] = f"schema id {sid} could not be looked up: {exc!r}"[:500]

        await asyncio.gather(*(lookup(sid) for sid in wanted))

    def _fetch(self, schema_id: int) -> Any:
        """The schema JSON of ``schema_id`` from the registry, or None when it has none.

        Any other registry failure (unreachable, 5xx) raises: nothing is cached, so
        the id is looked up again once the registry is back.
        """
        try:
            found = self.registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise
        return json.loads(found.schema_str or "null")

    def _store(self, schema_id: int, schema_json: Any) -> Writer:
        if schema_json is None:
            refused = DecodeError("unknown_schema", f"schema id {schema_id} is not in the registry")
        else:
            try:
                vet_writer_schema(schema_json)
                return self.add(schema_id, strip_logical_types(schema_json))
            except SchemaRefused as exc:
                refused = DecodeError("undecodable", f"writer schema {schema_id} refused: {exc}")
        self.unknown[schema_id] = refused
        raise refused
