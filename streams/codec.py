"""Avro in the Confluent wire format: magic byte 0, 4-byte schema id, Avro body.

Any Confluent client interoperates: a plain ``AvroSerializer`` producer feeds
the agents, an ``AvroDeserializer`` consumer reads what they emit.  Writer
schemas are fetched from the registry by id and cached; values are read into
our contract (Avro schema resolution), timestamps stay epoch milliseconds.

Decoding failures raise :class:`DecodeError` carrying an ``error_kind`` the
dead-letter record keeps (``undecodable`` or ``unknown_schema``).
"""

from __future__ import annotations

import io
import json
import logging
import struct
import time
from functools import lru_cache
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from dharma.schemas import load_schema, schema_text
from dharma.streams.errors import DecodeError

logger = logging.getLogger(__name__)

MAGIC = 0
HEADER = struct.Struct(">bI")
UNKNOWN_ID_TTL_S = 30.0


def strip_logical_types(schema: Any) -> Any:
    """Copy of a schema without ``logicalType`` annotations (timestamps stay ints)."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    return schema


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
    """

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self.registry = registry
        self._ids: dict[str, int] = {}
        self._contracts: dict[str, Any] = {}
        self._writers: dict[int, Any] = {}
        self._unknown: dict[int, float] = {}
        self._writer_json: dict[int, Any] = {}
        self._readers: dict[tuple[str, int], Any] = {}
        self._encode_key = lru_cache(maxsize=_KEY_CACHE)(self.encode)

    # -- encoding -----------------------------------------------------------
    def schema_id(self, subject: str) -> int:
        """Id of our contract under ``subject``, registering it on first use."""
        sid = self._ids.get(subject)
        if sid is None:
            sid = self.registry.register_schema(subject, Schema(schema_text(subject), "AVRO"))
            self._ids[subject] = sid
            self._writers[sid] = self.contract(subject)
            self._writer_json[sid] = strip_logical_types(load_schema(subject))
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
        parsed = self._writers.get(schema_id)
        if parsed is not None:
            return parsed
        seen = self._unknown.get(schema_id)
        if seen is not None and time.monotonic() - seen < UNKNOWN_ID_TTL_S:
            raise DecodeError("unknown_schema", f"schema id {schema_id} is not in the registry")
        try:
            found = self.registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                self._unknown[schema_id] = time.monotonic()
                raise DecodeError(
                    "unknown_schema", f"schema id {schema_id} is not in the registry"
                ) from exc
            raise
        raw = strip_logical_types(json.loads(found.schema_str or "null"))
        self._writer_json[schema_id] = raw
        parsed = self._writers[schema_id] = _parse(raw)
        return parsed

    def _reader_for(self, subject: str, sid: int) -> Any:
        """Our contract as reader schema, or None when the writer's schema is the same
        (then fastavro skips schema resolution: the common, fast case)."""
        key = (subject, sid)
        if key not in self._readers:
            same = self._writer_json.get(sid) == strip_logical_types(load_schema(subject))
            self._readers[key] = None if same else self.contract(subject)
        return self._readers[key]

    def decode(self, subject: str, data: bytes | None) -> Any:
        """Read wire-format ``data`` into our contract for ``subject``."""
        if not data:
            raise DecodeError("undecodable", "empty message value")
        if len(data) < HEADER.size:
            raise DecodeError("undecodable", f"{len(data)} bytes: shorter than the wire header")
        magic, sid = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError("undecodable", f"magic byte {magic}, expected {MAGIC}")
        writer, reader = self.writer_schema(sid), self._reader_for(subject, sid)
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
