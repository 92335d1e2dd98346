"""Handlers for schema ids, compatibility config and tests, and health."""

from __future__ import annotations

from aiohttp import web

from dharma.infra.registry.compat import Level
from dharma.infra.registry.errors import (
    invalid_compatibility,
    schema_not_found,
    subject_config_not_found,
)
from dharma.infra.registry.httputil import (
    check_versions,
    flag,
    paged,
    parsed_cached,
    read_body,
    reply,
    resolve_version,
    schema_body,
    store_of,
)
from dharma.infra.registry.schema import AVRO, prepare
from dharma.infra.registry.store import RegistryStore

routes = web.RouteTableDef()


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    """Confluent answers ``{}`` at the root."""
    return reply({})


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """200 when PostgreSQL answers."""
    await store_of(request).ping()
    return reply({"status": "UP"})


@routes.get("/schemas/types")
async def schema_types(request: web.Request) -> web.Response:
    """Only Avro is supported."""
    return reply([AVRO])


async def _usages(request: web.Request) -> list[tuple[str, int]]:
    store = store_of(request)
    schema_id = _schema_id(request)
    if await store.schema_by_id(schema_id) is None:
        raise schema_not_found(f"Schema {schema_id} not found")
    pairs = await store.usages(schema_id, deleted=flag(request, "deleted"))
    wanted = request.query.get("subject")
    return [pair for pair in pairs if wanted in (None, pair[0])]


def _schema_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit():
        raise schema_not_found(f"Schema {text} not found")
    return int(text)


@routes.get("/schemas/ids/{id}")
async def schema_by_id(request: web.Request) -> web.Response:
    """The schema text of a global id (soft-deleted ones included)."""
    schema_id = _schema_id(request)
    found = await store_of(request).schema_by_id(schema_id)
    if found is None:
        raise schema_not_found(f"Schema {schema_id} not found")
    return reply(schema_body(*found))


@routes.get("/schemas/ids/{id}/subjects")
async def subjects_of_id(request: web.Request) -> web.Response:
    """Subjects using a schema id."""
    subjects = sorted({subject for subject, _ in await _usages(request)})
    return reply(paged(request, subjects))


@routes.get("/schemas/ids/{id}/versions")
async def versions_of_id(request: web.Request) -> web.Response:
    """``{subject, version}`` pairs using a schema id."""
    pairs = [{"subject": s, "version": v} for s, v in await _usages(request)]
    return reply(paged(request, pairs))


async def _level_reply(store: RegistryStore, subject: str | None, global_too: bool) -> Level:
    level = await store.level(subject)
    if level is None and subject is not None and not global_too:
        raise subject_config_not_found(subject)
    return level or await store.effective_level(subject or "")


@routes.get("/config")
@routes.get("/config/{subject}")
async def get_config(request: web.Request) -> web.Response:
    """Compatibility level; a subject without its own is 40408 unless ``defaultToGlobal``."""
    subject = request.match_info.get("subject")
    level = await _level_reply(store_of(request), subject, flag(request, "defaultToGlobal"))
    return reply({"compatibilityLevel": level.value})


#: The body keys of a config update we serve (Confluent's field and its alias).
_LEVEL_KEYS = ("compatibility", "compatibilityLevel")


def config_level(body: dict[str, object]) -> Level:
    """The level a ``PUT /config`` body sets; 42203, as Confluent answers, for a body
    without one or with fields this registry does not serve (never a silent default).

    >>> config_level({"compatibility": "full"}).value
    'FULL'
    >>> from dharma.infra.registry.errors import RegistryError
    >>> for body in ({}, {"compatibility": None}, {"normalize": True}):
    ...     try:
    ...         config_level(body)
    ...     except RegistryError as exc:
    ...         print(exc.code, exc.message)
    42203 Invalid compatibility level: None
    42203 Invalid compatibility level: None
    42203 Invalid compatibility level: unsupported config field(s) normalize
    """
    unknown = sorted(set(body) - set(_LEVEL_KEYS))
    if unknown:
        raise invalid_compatibility(f"unsupported config field(s) {', '.join(unknown)}")
    given = [body[key] for key in _LEVEL_KEYS if key in body]
    if not given or not all(isinstance(v, str) and v == given[0] for v in given):
        raise invalid_compatibility(given[0] if len(given) == 1 else None)
    return Level.of(given[0])


@routes.put("/config")
@routes.put("/config/{subject}")
async def put_config(request: web.Request) -> web.Response:
    """Set a level: body ``{"compatibility": "FULL"}``; anything else is 42203."""
    level = config_level(await read_body(request))
    await store_of(request).set_level(request.match_info.get("subject"), level)
    return reply({"compatibility": level.value})


@routes.delete("/config")
@routes.delete("/config/{subject}")
async def delete_config(request: web.Request) -> web.Response:
    """Drop a subject's level (global: back to BACKWARD); returns the old one."""
    store, subject = store_of(request), request.match_info.get("subject")
    old = await _level_reply(store, subject, global_too=False)
    await store.delete_level(subject)
    return reply({"compatibilityLevel": old.value})


@routes.post("/compatibility/subjects/{subject}/versions/{version}")
@routes.post("/compatibility/subjects/{subject}/versions")
async def compatibility_check(request: web.Request) -> web.Response:
    """Would this schema be accepted against one version (or per the level, all)?"""
    store, subject = store_of(request), request.match_info["subject"]
    body = await read_body(request)
    parsed = prepare(body.get("schema"), body.get("schemaType"), body.get("references"))
    level = await store.effective_level(subject)
    if "version" in request.match_info:
        versions = [await resolve_version(store, subject, request.match_info["version"])]
    else:
        versions = await store.versions(subject)
    result = check_versions(level, parsed_cached(parsed.text), versions)
    out: dict[str, object] = {"is_compatible": result.is_compatible}
    if flag(request, "verbose"):
        out["messages"] = result.messages
    return reply(out)
