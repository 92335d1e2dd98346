"""Silences in PostgreSQL (``alert_silences``): written by ``dharma alerts silence``,
re-read by the workers that send alerts (:class:`SilenceReader`, every few seconds).

A silence (:class:`~dharma.streams.alerting.Silence`) withholds the notifications
it matches until it expires; the ``metric`` column holds the subject matcher.
"""

from __future__ import annotations

import logging
import uuid

import psycopg

from dharma.streams.alerting import Silence

__all__ = ["SilenceReader", "create_silence", "list_silences", "load_active"]

logger = logging.getLogger(__name__)

_DDL = """
CREATE TABLE IF NOT EXISTS alert_silences (
    silence_id text PRIMARY KEY,
    source text NOT NULL,
    metric text NOT NULL,
    kind text NOT NULL,
    starts_at timestamptz NOT NULL DEFAULT now(),
    ends_at timestamptz NOT NULL,
    created_by text NOT NULL,
    comment text NOT NULL DEFAULT ''
)"""


class SilenceReader:
    """Active silences, re-read from PostgreSQL by a timer; kept as they were on errors
    (a store that blinks neither mutes nor unmutes anything)."""

    name = "postgres.alert_silences"

    def __init__(self, dsn: str) -> None:
        self.dsn, self.active = dsn, list[Silence]()

    async def refresh(self) -> None:
        try:
            async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                self.active = await load_active(conn)
        except psycopg.Error as exc:
            logger.warning("silences not refreshed: %r", exc)


async def load_active(conn: psycopg.AsyncConnection) -> list[Silence]:
    """Silences not yet expired."""
    await conn.execute(_DDL)
    cur = await conn.execute(
        "SELECT silence_id, source, metric, kind, "
        "(extract(epoch FROM ends_at) * 1000)::bigint FROM alert_silences WHERE ends_at > now()")
    return [Silence(*row) for row in await cur.fetchall()]


def create_silence(dsn: str, *, source: str, metric: str, kind: str, duration_s: float,
                   created_by: str, comment: str = "") -> str:
    """Write a silence (synchronously, for the CLI); its id."""
    silence_id = uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_DDL)
        conn.execute(
            "INSERT INTO alert_silences (silence_id, source, metric, kind, ends_at, created_by,"
            " comment) VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s)",
            (silence_id, source, metric, kind, duration_s, created_by, comment))
    return silence_id


def list_silences(dsn: str) -> list[tuple[str, ...]]:
    """Active silences as printable rows (id, source, metric, kind, ends at, comment)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_DDL)
        rows = conn.execute(
            "SELECT silence_id, source, metric, kind, ends_at::text, comment FROM alert_silences"
            " WHERE ends_at > now() ORDER BY ends_at").fetchall()
    return [tuple(str(c) for c in row) for row in rows]
