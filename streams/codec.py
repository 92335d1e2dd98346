"""Avro in the Confluent wire format: magic byte 0, 4-byte schema id, Avro body.

Any Confluent client interoperates: a plain ``AvroSerializer`` producer feeds
the agents, an ``AvroDeserializer`` consumer reads what they emit.  Writer
schemas are fetched from the registry by id and cached
(:mod:`dharma.streams.writer_schemas`: bounded, and off the event loop in
workers); values are read into our contract (Avro schema resolution),
timestamps stay epoch milliseconds.

Decoding failures raise :class:`DecodeError` carrying an ``error_kind`` the
dead-letter record keeps (``undecodable`` or ``unknown_schema``).
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from dharma.schemas import load_schema, schema_text
from dharma.streams.errors import DecodeError
from dharma.streams.writer_schemas import WriterSchemas, strip_logical_types

logger = logging.getLogger(__name__)

MAGIC = 0
HEADER = struct.Struct(">bI")


def _parse(schema: Any) -> Any:
    # Keep fastavro's "parsed" mark (the write hint): without it every read and write
    # parses the schema again, which tripled the cost of a small record.
    return fastavro.parse_schema(strip_logical_types(schema))


#: Encoded keys remembered.
_KEY_CACHE = 100_000


class AvroWire:
    """Encoder/decoder for our subjects, backed by a schema registry.

    Parameters
    ----------
    registry:
        Client of a Confluent-compatible registry.
    lookup_on_miss:
        Look unknown writer schema ids up while decoding (tools); workers pass
        False and call :meth:`resolve` before decoding a batch.
    """

    def __init__(self, registry: SchemaRegistryClient, lookup_on_miss: bool = True) -> None:
        self.registry = registry
        self.writers = WriterSchemas(registry, _parse, lookup_on_miss=lookup_on_miss)
        self._ids: dict[str, int] = {}
        self._contracts: dict[str, Any] = {}
        self._encode_key = lru_cache(maxsize=_KEY_CACHE)(self.encode)

    # -- encoding -----------------------------------------------------------
    def schema_id(self, subject: str) -> int:
        """Id of our contract under ``subject``, registering it on first use."""
        sid = self._ids.get(subject)
        if sid is None:
            sid = self.registry.register_schema(subject, Schema(schema_text(subject), "AVRO"))
            self._ids[subject] = sid
            self.writers.add(sid, strip_logical_types(load_schema(subject)))
        return sid

    def contract(self, subject: str) -> Any:
        """Our parsed contract for ``subject`` (logical types stripped)."""
        parsed = self._contracts.get(subject)
        if parsed is None:
            parsed = self._contracts[subject] = _parse(load_schema(subject))
        return parsed

    def encode(self, subject: str, value: Any) -> bytes:
        """Serialise ``value`` with our contract for ``subject``, in wire format."""
        sid = self.schema_id(subject)
        buf = io.BytesIO()
        buf.write(HEADER.pack(MAGIC, sid))
        fastavro.schemaless_writer(buf, self.contract(subject), value)
        return buf.getvalue()

    def encode_key(self, subject: str, key: str) -> bytes:
        """:meth:`encode` for a string key, memoised (keys repeat: users, series)."""
        return self._encode_key(subject, key)

    # -- decoding -----------------------------------------------------------
    def writer_schema(self, schema_id: int) -> Any:
        """Parsed writer schema for ``schema_id``; :class:`DecodeError` if unknown."""
        return self.writers.get(schema_id).parsed

    async def resolve(self, payloads: Iterable[bytes | None]) -> None:
        """Look up, off the event loop, the writer schemas a batch needs (see
        :meth:`WriterSchemas.resolve`); a worker calls it before decoding the batch."""
        await self.writers.resolve(payloads)

    def _reader_for(self, subject: str, sid: int) -> tuple[Any, Any]:
        """Writer schema of ``sid`` and our contract as reader, or None as reader when the
        writer's schema is the same (then fastavro skips schema resolution: the common,
        fast case)."""
        writer = self.writers.get(sid)
        if subject not in writer.readers:
            same = writer.json == strip_logical_types(load_schema(subject))
            writer.readers[subject] = None if same else self.contract(subject)
        return writer.parsed, writer.readers[subject]

    def decode(self, subject: str, data: bytes | None) -> Any:
        """Read wire-format ``data`` into our contract for ``subject``."""
        if not data:
            raise DecodeError("undecodable", "empty message value")
        if len(data) < HEADER.size:
            raise DecodeError("undecodable", f"{len(data)} bytes: shorter than the wire header")
        magic, sid = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError("undecodable", f"magic byte {magic}, expected {MAGIC}")
        writer, reader = self._reader_for(subject, sid)
        buf = io.BytesIO(data)
        buf.seek(HEADER.size)
        try:
            value = fastavro.schemaless_reader(buf, writer, reader)
        except Exception as exc:  # fastavro raises many types on corrupt bodies
            raise DecodeError("undecodable", f"Avro body does not match schema id {sid}: "
                              f"{type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError("undecodable", f"{len(data) - buf.tell()} trailing bytes after "
                              f"the Avro body (schema id {sid})")
        return value
