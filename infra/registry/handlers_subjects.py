"""Handlers under ``/subjects``: register, look up, list, read and delete versions."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from dharma.infra.registry.compat import Level
from dharma.infra.registry.errors import (
    incompatible,
    schema_not_found,
    subject_not_found,
    subject_not_soft_deleted,
    version_not_found,
    version_not_soft_deleted,
)
from dharma.infra.registry.httputil import (
    check_versions,
    flag,
    paged,
    parse_version,
    parsed_cached,
    read_body,
    reply,
    resolve_version,
    store_of,
    version_body,
)
from dharma.infra.registry.schema import prepare
from dharma.infra.registry.store import SubjectVersion

routes = web.RouteTableDef()


@routes.get("/subjects")
async def list_subjects(request: web.Request) -> web.Response:
    """Subjects with live versions; ``deleted``/``deleted_only``/``subjectPrefix``."""
    store = store_of(request)
    found = await store.subjects(flag(request, "deleted"), flag(request, "deleted_only"))
    prefix = request.query.get("subjectPrefix", "")
    return reply(paged(request, [s for s in found if s.startswith(prefix)]))


@routes.post("/subjects/{subject}/versions")
async def register(request: web.Request) -> web.Response:
    """Register a schema; the existing id if already live under the subject."""
    body = await read_body(request)
    parsed = prepare(body.get("schema"), body.get("schemaType"), body.get("references"))
    new_schema = parsed_cached(parsed.text)

    def vet(level: Level, live: Sequence[SubjectVersion]) -> None:
        result = check_versions(level, new_schema, live)
        if not result.is_compatible:
            raise incompatible(result.messages)

    schema_id = await store_of(request).register(request.match_info["subject"], parsed, vet)
    return reply({"id": schema_id})


@routes.post("/subjects/{subject}")
async def lookup(request: web.Request) -> web.Response:
    """Find a schema under a subject: 40401 no subject, 40403 not registered there."""
    subject = request.match_info["subject"]
    body = await read_body(request)
    parsed = prepare(body.get("schema"), body.get("schemaType"), body.get("references"))
    versions = await store_of(request).versions(subject, deleted=flag(request, "deleted"))
    if not versions:
        raise subject_not_found(subject)
    matches = [v for v in versions if v.fingerprint == parsed.fingerprint]
    if not matches:
        raise schema_not_found("Schema not found")
    return reply(version_body(matches[-1]))


@routes.get("/subjects/{subject}/versions")
async def list_versions(request: web.Request) -> web.Response:
    """Version numbers of a subject, oldest first."""
    subject = request.match_info["subject"]
    versions = await store_of(request).versions(
        subject, flag(request, "deleted"), flag(request, "deleted_only")
    )
    if not versions:
        raise subject_not_found(subject)
    return reply(paged(request, [v.version for v in versions]))


@routes.get("/subjects/{subject}/versions/{version}")
async def get_version(request: web.Request) -> web.Response:
    """One version (int or ``latest``) of a subject."""
    found = await resolve_version(
        store_of(request),
        request.match_info["subject"],
        request.match_info["version"],
        deleted=flag(request, "deleted"),
    )
    return reply(version_body(found))


@routes.get("/subjects/{subject}/versions/{version}/schema")
async def get_version_schema(request: web.Request) -> web.Response:
    """The raw schema of one version."""
    found = await resolve_version(
        store_of(request), request.match_info["subject"], request.match_info["version"]
    )
    return web.Response(text=found.schema, content_type="application/json")


@routes.delete("/subjects/{subject}")
async def delete_subject(request: web.Request) -> web.Response:
    """Soft-delete every live version (and the subject's config); ``permanent`` after."""
    store, subject = store_of(request), request.match_info["subject"]
    permanent = flag(request, "permanent")
    versions = await store.versions(subject, deleted=permanent)
    if not versions:
        raise subject_not_found(subject)
    if permanent and not all(v.deleted for v in versions):
        raise subject_not_soft_deleted(subject)
    numbers = [v.version for v in versions]
    await store.delete_versions(subject, numbers, permanent=permanent)
    if not permanent:
        await store.delete_level(subject)
    return reply(numbers)


@routes.delete("/subjects/{subject}/versions/{version}")
async def delete_version(request: web.Request) -> web.Response:
    """Soft-delete one version; ``permanent=true`` removes a soft-deleted one."""
    store, subject = store_of(request), request.match_info["subject"]
    permanent = flag(request, "permanent")
    number = parse_version(request.match_info["version"])
    versions = await store.versions(subject, deleted=permanent)
    if not versions:
        raise subject_not_found(subject)
    found = (
        versions[-1] if number is None else next((v for v in versions if v.version == number), None)
    )
    if found is None:
        raise version_not_found(subject, number)
    if permanent and not found.deleted:
        raise version_not_soft_deleted(subject, found.version)
    await store.delete_versions(subject, [found.version], permanent=permanent)
    return reply(found.version)
