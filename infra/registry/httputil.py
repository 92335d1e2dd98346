"""HTTP helpers shared by the handlers: JSON replies, bodies, flags, versions."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import avro.schema
from aiohttp import web

from dharma.infra.registry.compat import CompatResult, Level, check
from dharma.infra.registry.errors import (
    bad_request,
    invalid_version,
    subject_not_found,
    version_not_found,
)
from dharma.infra.registry.schema import AVRO, parse
from dharma.infra.registry.store import RegistryStore, SubjectVersion

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
STORE: web.AppKey[RegistryStore] = web.AppKey("store", RegistryStore)
_MAX_VERSION = 2**31 - 1


def reply(data: Any, status: int = 200) -> web.Response:
    """A JSON response with Confluent's content type."""
    return web.Response(text=json.dumps(data), status=status, content_type=CONTENT_TYPE)


def store_of(request: web.Request) -> RegistryStore:
    """The store the application was built with."""
    return request.app[STORE]


async def read_body(request: web.Request) -> dict[str, Any]:
    """The JSON object in the request body (any JSON content type)."""
    try:
        data = json.loads(await request.text() or "{}")
    except json.JSONDecodeError as exc:
        raise bad_request(f"Request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise bad_request("Request body must be a JSON object")
    return data


def flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter (``true``/``True``/``1``)."""
    return request.query.get(name, "false").strip().lower() in ("true", "1")


def paged(request: web.Request, items: Sequence[Any]) -> list[Any]:
    """Apply Confluent's ``offset``/``limit`` (negative limit: no limit)."""
    try:
        offset = max(int(request.query.get("offset", "0")), 0)
        limit = int(request.query.get("limit", "-1"))
    except ValueError as exc:
        raise bad_request(f"Bad offset or limit: {exc}") from exc
    chosen = list(items)[offset:]
    return chosen if limit < 0 else chosen[:limit]


def parse_version(text: str) -> int | None:
    """A version id: positive int, or None for ``latest`` (and ``-1``)."""
    if text == "latest" or text == "-1":
        return None
    if not text.isdigit() or not 1 <= int(text) <= _MAX_VERSION:
        raise invalid_version(text)
    return int(text)


async def resolve_version(
    store: RegistryStore, subject: str, version_text: str, deleted: bool = False
) -> SubjectVersion:
    """The requested version of a subject, or a 40401/40402 error."""
    number = parse_version(version_text)
    versions = await store.versions(subject, deleted=deleted)
    if not versions:
        raise subject_not_found(subject)
    if number is None:
        return versions[-1]
    for found in versions:
        if found.version == number:
            return found
    raise version_not_found(subject, number)


def version_body(found: SubjectVersion) -> dict[str, Any]:
    """Confluent's ``{subject, version, id, schema}`` shape."""
    return {
        "subject": found.subject,
        "version": found.version,
        "id": found.schema_id,
        "schema": found.schema,
    }


def schema_body(text: str, schema_type: str) -> dict[str, Any]:
    """``{"schema": ...}``, with ``schemaType`` only when not AVRO (as Confluent does)."""
    return {"schema": text} if schema_type == AVRO else {"schema": text, "schemaType": schema_type}


@functools.lru_cache(maxsize=512)
def parsed_cached(text: str) -> avro.schema.Schema:
    """Parse stored schema text once (stored texts never change)."""
    return parse(text)


def check_versions(
    level: Level, candidate: avro.schema.Schema, versions: Sequence[SubjectVersion]
) -> CompatResult:
    """Run :func:`compat.check` against stored versions, parsing only those needed."""
    targets = versions if level.transitive else versions[-1:]
    return check(level, candidate, [(v.version, parsed_cached(v.schema)) for v in targets])
