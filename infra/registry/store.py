"""PostgreSQL persistence for the registry: schemas, subject versions, config.

Schema ids are global (one row per canonical schema). Registration under a
subject runs in one transaction holding a per-subject advisory lock, so
concurrent registrations never create duplicate versions. Deleting versions
keeps the schema rows, so ids stay resolvable for old messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from dharma.infra.registry.compat import DEFAULT_LEVEL, Level
from dharma.infra.registry.schema import ParsedSchema

log = logging.getLogger(__name__)

#: First key of every advisory lock the registry takes ("DRMA").
LOCK_NAMESPACE = 0x44524D41
GLOBAL = ""  # registry_config.subject of the global level

DDL = (
    """CREATE TABLE IF NOT EXISTS registry_schemas (
        id serial PRIMARY KEY,
        schema_type text NOT NULL DEFAULT 'AVRO',
        fingerprint text NOT NULL,
        schema text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (schema_type, fingerprint))""",
    """CREATE TABLE IF NOT EXISTS registry_subject_versions (
        subject text NOT NULL,
        version integer NOT NULL,
        schema_id integer NOT NULL REFERENCES registry_schemas (id),
        deleted boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (subject, version))""",
    """CREATE INDEX IF NOT EXISTS registry_subject_versions_schema_id
        ON registry_subject_versions (schema_id)""",
    """CREATE TABLE IF NOT EXISTS registry_config (
        subject text PRIMARY KEY,
        compatibility text NOT NULL)""",
)

_VERSION_COLUMNS = """SELECT v.subject, v.version, v.schema_id, s.schema, s.fingerprint, v.deleted
    FROM registry_subject_versions v JOIN registry_schemas s ON s.id = v.schema_id"""


@dataclass(frozen=True)
class SubjectVersion:
    """One version of a subject, with its schema."""

    subject: str
    version: int
    schema_id: int
    schema: str
    fingerprint: str
    deleted: bool = False


#: Called inside the registration transaction with the subject's level and
#: live versions (oldest first); raises to refuse the registration.
Vetter = Callable[[Level, Sequence[SubjectVersion]], None]


class RegistryStore:
    """Async access to the registry tables through a connection pool."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, max_size: int = 4, timeout: float = 30.0) -> RegistryStore:
        """Open a pool on ``dsn`` (waiting up to ``timeout`` s) and create the tables."""
        pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=max_size,
            open=False,
            check=AsyncConnectionPool.check_connection,  # survive a PostgreSQL restart
        )
        await pool.open(wait=True, timeout=timeout)
        store = cls(pool)
        await store.create_tables()
        return store

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def create_tables(self) -> None:
        """Create the tables if missing; safe with several registries starting at once."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_NAMESPACE,))
            for statement in DDL:
                await conn.execute(statement)
        log.info("registry tables ready")

    async def ping(self) -> None:
        """Raise unless PostgreSQL answers."""
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def schema_by_id(self, schema_id: int) -> tuple[str, str] | None:
        """``(schema text, schema type)`` of a global id, or None."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT schema, schema_type FROM registry_schemas WHERE id = %s", (schema_id,)
            )
            row = await cur.fetchone()
        return (row[0], row[1]) if row else None

    async def usages(self, schema_id: int, deleted: bool = False) -> list[tuple[str, int]]:
        """``(subject, version)`` pairs that use a schema id."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT subject, version FROM registry_subject_versions"
                " WHERE schema_id = %s AND (%s OR NOT deleted) ORDER BY subject, version",
                (schema_id, deleted),
            )
            return [(row[0], row[1]) for row in await cur.fetchall()]

    async def subjects(self, deleted: bool = False, deleted_only: bool = False) -> list[str]:
        """Subjects with live versions (or with deleted ones, per the flags)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT subject FROM registry_subject_versions GROUP BY subject"
                " HAVING (%s AND bool_or(deleted))"
                " OR (NOT %s AND (%s OR bool_or(NOT deleted))) ORDER BY subject",
                (deleted_only, deleted_only, deleted),
            )
            return [row[0] for row in await cur.fetchall()]

    async def versions(
        self, subject: str, deleted: bool = False, deleted_only: bool = False
    ) -> list[SubjectVersion]:
        """Versions of a subject, oldest first; live only unless asked otherwise."""
        async with self._pool.connection() as conn:
            return await _versions(conn, subject, deleted, deleted_only)

    async def register(self, subject: str, parsed: ParsedSchema, vet: Vetter) -> int:
        """Register ``parsed`` under ``subject``; return its global id.

        An identical live version returns its id without a new version;
        otherwise ``vet`` decides, then a new version is appended.
        """
        async with self._pool.connection() as conn, conn.transaction():
            await _lock_subject(conn, subject)
            live = await _versions(conn, subject, deleted=False, deleted_only=False)
            same = [v for v in live if v.fingerprint == parsed.fingerprint]
            if same:
                return same[-1].schema_id
            vet(await _level(conn, subject), live)
            schema_id = await _schema_id(conn, parsed)
            cur = await conn.execute(
                "INSERT INTO registry_subject_versions (subject, version, schema_id)"
                " SELECT %s, COALESCE(MAX(version), 0) + 1, %s"
                " FROM registry_subject_versions WHERE subject = %s RETURNING version",
                (subject, schema_id, subject),
            )
            row = await cur.fetchone()
        log.info("registered subject=%s version=%s id=%s", subject, row and row[0], schema_id)
        return schema_id

    async def delete_versions(self, subject: str, versions: Sequence[int], permanent: bool) -> None:
        """Soft-delete (flag) or permanently delete (remove) versions of a subject."""
        async with self._pool.connection() as conn, conn.transaction():
            await _lock_subject(conn, subject)
            if permanent:
                await conn.execute(
                    "DELETE FROM registry_subject_versions"
                    " WHERE subject = %s AND version = ANY(%s)",
                    (subject, list(versions)),
                )
            else:
                await conn.execute(
                    "UPDATE registry_subject_versions SET deleted = true"
                    " WHERE subject = %s AND version = ANY(%s)",
                    (subject, list(versions)),
                )
        log.info("deleted subject=%s versions=%s permanent=%s", subject, versions, permanent)

    async def level(self, subject: str | None) -> Level | None:
        """The configured level of a subject (``None``: global), or None if unset."""
        async with self._pool.connection() as conn:
            return await _configured(conn, subject or GLOBAL)

    async def effective_level(self, subject: str) -> Level:
        """The level that applies to ``subject``: its own, else global, else BACKWARD."""
        async with self._pool.connection() as conn:
            return await _level(conn, subject)

    async def set_level(self, subject: str | None, level: Level) -> None:
        """Set the level of a subject (``None``: global)."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO registry_config (subject, compatibility) VALUES (%s, %s)"
                " ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
                (subject or GLOBAL, level.value),
            )

    async def delete_level(self, subject: str | None) -> None:
        """Remove a subject's level (``None``: reset the global one to the default)."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM registry_config WHERE subject = %s", (subject or GLOBAL,)
            )


async def _lock_subject(conn: AsyncConnection, subject: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, subject))


async def _versions(
    conn: AsyncConnection, subject: str, deleted: bool, deleted_only: bool
) -> list[SubjectVersion]:
    cur = await conn.execute(
        _VERSION_COLUMNS + " WHERE v.subject = %s"
        " AND ((%s AND v.deleted) OR (NOT %s AND (%s OR NOT v.deleted)))"
        " ORDER BY v.version",
        (subject, deleted_only, deleted_only, deleted),
    )
    return [SubjectVersion(*row) for row in await cur.fetchall()]


async def _configured(conn: AsyncConnection, key: str) -> Level | None:
    cur = await conn.execute("SELECT compatibility FROM registry_config WHERE subject = %s", (key,))
    row = await cur.fetchone()
    return Level(row[0]) if row else None


async def _level(conn: AsyncConnection, subject: str) -> Level:
    """Effective level: the subject's, else the global one, else the default."""
    return await _configured(conn, subject) or await _configured(conn, GLOBAL) or DEFAULT_LEVEL


async def _schema_id(conn: AsyncConnection, parsed: ParsedSchema) -> int:
    """Id of the schema, inserting it if new (ids are global across subjects)."""
    lookup = "SELECT id FROM registry_schemas WHERE schema_type = %s AND fingerprint = %s"
    key = (parsed.schema_type, parsed.fingerprint)
    row = await (await conn.execute(lookup, key)).fetchone()
    if row is None:
        cur = await conn.execute(
            "INSERT INTO registry_schemas (schema_type, fingerprint, schema)"
            " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
            (*key, parsed.text),
        )
        row = await cur.fetchone() or await (await conn.execute(lookup, key)).fetchone()
    if row is None:
        raise RuntimeError(f"schema {parsed.fingerprint} vanished while registering")
    return int(row[0])
