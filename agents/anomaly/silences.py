"""Silences: matchers with an expiry that mute notifications (Alertmanager semantics).

A silenced episode still fires and resolves in the agent's state; only the
notification is withheld.  Silences live in PostgreSQL (``alert_silences``):
``dharma alerts silence`` writes them, the agent re-reads them every few seconds.

>>> s = Silence("s1", source="web-*", metric="*", kind="anomaly", ends_at_ms=2_000)
>>> s.matches("web-01", "cpu", "anomaly", now_ms=1_000), s.matches("db-01", "cpu", "anomaly", 1_000)
(True, False)
>>> s.matches("web-01", "cpu", "anomaly", now_ms=3_000)
False
"""

from __future__ import annotations

import fnmatch
import uuid
from dataclasses import dataclass

import psycopg

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


@dataclass(frozen=True)
class Silence:
    """Glob matchers on source, metric and kind, active until ``ends_at_ms``."""

    silence_id: str
    source: str
    metric: str
    kind: str
    ends_at_ms: int

    def matches(self, source: str, metric: str, kind: str, now_ms: int) -> bool:
        return (now_ms < self.ends_at_ms and fnmatch.fnmatchcase(source, self.source)
                and fnmatch.fnmatchcase(metric, self.metric)
                and fnmatch.fnmatchcase(kind, self.kind))


def is_silenced(silences: list[Silence], source: str, metric: str, kind: str,
                now_ms: int) -> bool:
    """True when any active silence matches."""
    return any(s.matches(source, metric, kind, now_ms) for s in silences)


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


def list_silences(dsn: str) -> list[tuple[str, str, str, str, str, str]]:
    """Active silences as printable rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_DDL)
        rows = conn.execute(
            "SELECT silence_id, source, metric, kind, ends_at::text, comment FROM alert_silences"
            " WHERE ends_at > now() ORDER BY ends_at").fetchall()
    return [tuple(str(c) for c in row) for row in rows]  # type: ignore[misc]
