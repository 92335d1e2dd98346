"""A follow-up tick's cost does not grow with the incidents waiting on their executor:
remediations in flight within their lease, and incidents still alerting, are not read
one by one (``dharma bench healing``: with hundreds open, the tick held the worker's
lock for most of its period and delayed every new incident's decision)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg.conninfo import make_conninfo

from dharma.agents.healing.engine import Healer, Publisher
from dharma.agents.healing.followup import FollowUp
from dharma.agents.healing.playbooks import load_playbooks
from dharma.sinks.asset_changes import AssetChangeSink
from dharma.sinks.cmdb import Cmdb
from dharma.sinks.incidents import AlertRow, IncidentRow, IncidentStore, RemediationRow
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import HealingSettings
from dharma.topologies.capabilities import graph

pytestmark = pytest.mark.integration

WAITING = 25
NOW = 1_800_000_000_000


class ReadCountingStore(IncidentStore):
    """The real store, noting which incidents are read one at a time."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.read: list[str] = []

    async def incidents(self, *, statuses: Sequence[str] = (), ids: Sequence[str] = (),
                        limit: int = 1000) -> list[IncidentRow]:
        self.read += ids
        return await super().incidents(statuses=statuses, ids=ids, limit=limit)

    async def alerts_of(self, incident_id: str) -> list[AlertRow]:
        self.read.append(incident_id)
        return await super().alerts_of(incident_id)


@pytest.fixture
def own_database(settings: Any) -> Iterator[str]:
    """A database of its own on the session's server: the tick sees only this test."""
    dsn, name = settings.postgres.dsn.get_secret_value(), f"tick_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # a generated name, no input
    yield make_conninfo(dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def _waiting(store: IncidentStore, n: int) -> list[str]:
    """``n`` acknowledged incidents, each still alerting, its restart requested and
    published, its lease not over."""
    ids = []
    for i in range(n):
        incident, source = f"inc-{i}", f"web-{i}"
        await store.add_incident(IncidentRow(incident, "acknowledged", NOW - 60_000,
                                             NOW + 300_000, "critical", "t", root=source,
                                             published="acknowledged"))
        await store.save_alert(AlertRow(incident, f"fp-{i}", source, "threshold",
                                        "critical", "s", {}, True, NOW - 60_000, NOW))
        await store.add_remediation(RemediationRow(
            f"rem-{i}", incident, "remediate", "restart-service@1", 1, source,
            "restart_service", "requested", "r", NOW - 50_000, requested_at=NOW - 50_000,
            lease_until=NOW + 600_000, published="requested"))
        ids.append(incident)
    return ids


def test_a_tick_reads_no_incident_waiting_on_its_executor(settings: Any,
                                                          own_database: str) -> None:
    async def run() -> tuple[list[str], list[dict[str, Any]]]:
        store = ReadCountingStore(own_database)
        history = AssetChangeSink(own_database)
        await store.setup()
        await history.setup()
        published: list[dict[str, Any]] = []
        healer = Healer(store, Cmdb(graph(settings)), history, load_playbooks(),
                        Publisher(published.append, published.append), HealingSettings(),
                        PipelineMetrics(CollectorRegistry()))
        try:
            ids = await _waiting(store, WAITING)
            await FollowUp(healer).tick(NOW)
            return [i for i in store.read if i in ids], published
        finally:
            await store.close()
            await history.close()
            await healer.cmdb.graph.close()

    read, published = asyncio.run(run())
    assert read == [] and published == []  # nothing due: nothing read, nothing said
