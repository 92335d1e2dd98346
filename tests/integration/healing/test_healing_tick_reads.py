"""A follow-up tick's cost does not grow with the incidents waiting on their executor:
remediations in flight within their lease, and incidents still alerting, are not read
one by one (``dharma bench healing``: with hundreds open, the tick held the worker's
lock for most of its period and delayed every new incident's decision)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from healing_support import in_process_healer

from dharma.agents.healing.followup import FollowUp
from dharma.sinks.asset_changes import AssetChangeSink
from dharma.sinks.incidents import AlertRow, IncidentRow, IncidentStore, RemediationRow

pytestmark = pytest.mark.integration

FEW, MANY = 5, 25
NOW = 1_800_000_000_000


class ReadCountingStore(IncidentStore):
    """The real store, counting the reads of incidents and of their alerts."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.reads = 0

    async def incidents(self, *, statuses: Sequence[str] = (), ids: Sequence[str] = (),
                        limit: int = 1000) -> list[IncidentRow]:
        self.reads += 1
        return await super().incidents(statuses=statuses, ids=ids, limit=limit)

    async def alerts_of(self, incident_id: str) -> list[AlertRow]:
        self.reads += 1
        return await super().alerts_of(incident_id)


async def _waiting(store: IncidentStore, first: int, n: int) -> None:
    """``n`` acknowledged incidents, each still alerting, its restart requested and
    published, its lease not over."""
    for i in range(first, first + n):
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


def test_a_ticks_reads_do_not_grow_with_the_incidents_waiting_on_their_executor(
        settings: Any, own_database: str) -> None:
    async def run() -> tuple[list[int], list[dict[str, Any]]]:
        store = ReadCountingStore(own_database)
        history = AssetChangeSink(own_database)
        await store.setup()
        await history.setup()
        published: list[dict[str, Any]] = []
        healer = in_process_healer(settings, store, history, published)
        reads = []
        try:
            for first, n in ((0, FEW), (FEW, MANY - FEW)):
                await _waiting(store, first, n)
                store.reads = 0
                await FollowUp(healer).tick(NOW)
                reads.append(store.reads)
            return reads, published
        finally:
            await store.close()
            await history.close()
            await healer.cmdb.graph.close()

    (with_few, with_many), published = asyncio.run(run())
    assert with_many == with_few <= 2 and published == []  # nothing due: nothing said
