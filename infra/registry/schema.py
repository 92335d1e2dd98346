"""Avro schema parsing, canonical text and fingerprint (pure)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import avro.errors
import avro.schema

from dharma.infra.registry.errors import invalid_schema

AVRO = "AVRO"


@dataclass(frozen=True)
class ParsedSchema:
    """A validated schema: the text as submitted, its canonical text and fingerprint."""

    text: str
    canonical: str
    fingerprint: str
    schema_type: str = AVRO


def parse(text: str) -> avro.schema.Schema:
    """Parse Avro schema text with the Apache ``avro`` package (raises 42201)."""
    try:
        return avro.schema.parse(text)
    except (avro.errors.AvroException, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise invalid_schema(str(exc)) from exc


def canonical_text(schema: avro.schema.Schema) -> str:
    """Normalised JSON of the full schema.

    Unlike Avro's Parsing Canonical Form this keeps defaults, docs and aliases,
    which matter for compatibility, so two texts share an id only if they
    differ in formatting or key order.

    >>> canonical_text(parse('{ "type": "string" }'))
    '"string"'
    """
    return json.dumps(schema.to_json(), sort_keys=True, separators=(",", ":"))


def prepare(text: object, schema_type: object = AVRO, references: object = None) -> ParsedSchema:
    """Validate a registration request's schema fields into a :class:`ParsedSchema`."""
    if not isinstance(text, str) or not text.strip():
        raise invalid_schema("'schema' must be a non-empty string")
    if (schema_type or AVRO) != AVRO:
        raise invalid_schema(f"schema type {schema_type!r} is not supported (AVRO only)")
    if references:
        raise invalid_schema("schema references are not supported by the embedded registry")
    canonical = canonical_text(parse(text))
    fingerprint = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return ParsedSchema(text=text, canonical=canonical, fingerprint=fingerprint)
