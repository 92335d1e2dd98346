"""``PostgresMetricsSink`` against the embedded PostgreSQL: idempotent, partitioned, bounded."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from dharma.sinks.base import SinkUnavailable
from dharma.sinks.postgres import DAY_MS, PostgresMetricsSink
from dharma.streams.records import MetricSample
from dharma.streams.settings import Settings

pytestmark = pytest.mark.integration

DAY = int(time.time() * 1000) // DAY_MS - 1  # yesterday: within the partitioned days
MIDNIGHT_MS = DAY * DAY_MS


def partition(table: str, day: int) -> str:
    return f"{table}_p{datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day):%Y%m%d}"


def samples(n: int, start: int = MIDNIGHT_MS + 3_600_000) -> list[MetricSample]:
    return [
        MetricSample(source=f"web-{i % 2:02d}", metric="cpu", value=float(i), ts=start + i,
                     labels={"env": "prod", "i": str(i)}, unit="percent" if i % 2 else None)
        for i in range(n)
    ]


@pytest.fixture
def dsn(settings: Settings) -> str:
    return settings.postgres.dsn.get_secret_value()


@pytest.fixture
def table(dsn: str) -> Iterator[str]:
    """A table of its own per test, dropped afterwards (with its partitions)."""
    name = f"metrics_t{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def flush_all(sink: PostgresMetricsSink, *batches: Sequence[MetricSample]) -> list[int]:
    async def run() -> list[int]:
        try:
            return [await sink.flush(batch) for batch in batches]
        finally:
            await sink.close()

    return asyncio.run(run())


def rows(dsn: str, table: str) -> list[tuple[object, ...]]:
    query = sql.SQL(
        "SELECT source, metric, (extract(epoch FROM ts) * 1000)::bigint, value, labels, unit,"
        " tableoid::regclass::text FROM {} ORDER BY ts").format(sql.Identifier(table))
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def test_batch_written_once_and_replay_stores_nothing(dsn: str, table: str) -> None:
    batch = samples(6)
    sink = PostgresMetricsSink(dsn, table=table)
    assert flush_all(sink, batch, batch, batch[:3]) == [6, 0, 0]
    stored = rows(dsn, table)
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in stored] == [
        (s.source, s.metric, s.ts, s.value, s.labels, s.unit) for s in batch
    ]


def test_empty_batch_is_a_no_op(table: str) -> None:
    sink = PostgresMetricsSink("postgresql://nobody@127.0.0.1:1/none", table=table, attempts=1)
    assert flush_all(sink, []) == [0]


def test_samples_spanning_two_days_get_two_day_partitions(dsn: str, table: str) -> None:
    edge = [
        MetricSample(source="db-01", metric="iops", value=1.0, ts=MIDNIGHT_MS - 1),
        MetricSample(source="db-01", metric="iops", value=2.0, ts=MIDNIGHT_MS),
        MetricSample(source="db-01", metric="iops", value=3.0, ts=MIDNIGHT_MS + DAY_MS - 1),
    ]
    sink = PostgresMetricsSink(dsn, table=table)
    assert flush_all(sink, edge) == [3]
    if sink.timescale:  # production: TimescaleDB chunks the hypertable itself
        with psycopg.connect(dsn) as conn:
            found = conn.execute("SELECT 1 FROM timescaledb_information.hypertables"
                                 " WHERE hypertable_name = %s", (table,)).fetchone()
        assert found is not None
        return
    before, day = partition(table, DAY - 1), partition(table, DAY)
    assert [r[6] for r in rows(dsn, table)] == [before, day, day]
    assert partitions_of(dsn, table) == [f"{table}_default", before, day]


def test_samples_older_than_the_partitioned_days_share_the_default_partition(
        dsn: str, table: str) -> None:
    """A backfill (or a producer naming every past day) creates no partition per day."""
    old = [MetricSample(source="db-01", metric="iops", value=float(d),
                        ts=(DAY - 8 - d) * DAY_MS) for d in range(30)]
    sink = PostgresMetricsSink(dsn, table=table, partition_days=7)
    assert flush_all(sink, old) == [30]
    if sink.timescale:
        return
    assert {r[6] for r in rows(dsn, table)} == {f"{table}_default"}
    assert partitions_of(dsn, table) == [f"{table}_default"]


def partitions_of(dsn: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        parts = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY 1", (table,)).fetchall()
    return [p[0] for p in parts]


def test_partitions_are_created_again_by_a_new_sink(dsn: str, table: str) -> None:
    """A restarted worker (a new sink, empty partition cache) writes into existing partitions."""
    batch = samples(4)
    assert flush_all(PostgresMetricsSink(dsn, table=table), batch) == [4]
    assert flush_all(PostgresMetricsSink(dsn, table=table), batch, samples(2, MIDNIGHT_MS)) == [
        0, 2]


class CountingSink(PostgresMetricsSink):
    """The real sink, counting connection attempts (a spy, not a fake)."""

    setups = 0

    async def setup(self) -> None:
        self.setups += 1
        await super().setup()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_broken_dsn_raises_sink_unavailable_after_bounded_retries(table: str) -> None:
    sink = CountingSink(f"postgresql://postgres@127.0.0.1:{closed_port()}/dharma", table=table,
                        attempts=2, max_backoff_s=0.05)
    started = time.monotonic()
    with pytest.raises(SinkUnavailable, match=f"postgres.{table}"):
        flush_all(sink, samples(2))
    assert sink.setups == 2
    assert time.monotonic() - started < 10
