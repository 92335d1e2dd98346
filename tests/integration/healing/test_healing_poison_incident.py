"""An incident that comes due with no alert recorded (a row written by hand, a crash
between an incident and its first alert, another tool's test data) is closed with
the reason; it used to raise in every follow-up tick, which crashed the worker at
each start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from healing_support import in_process_healer

from dharma.agents.healing.followup import FollowUp
from dharma.sinks.asset_changes import AssetChangeSink
from dharma.sinks.incidents import IncidentRow, IncidentStore

pytestmark = pytest.mark.integration

NOW = 1_800_000_000_000


def test_a_due_incident_without_alerts_is_closed_not_a_crash(
        settings: Any, own_database: str) -> None:
    async def run() -> tuple[list[IncidentRow], list[dict[str, Any]]]:
        store, history = IncidentStore(own_database), AssetChangeSink(own_database)
        await store.setup()
        await history.setup()
        published: list[dict[str, Any]] = []
        healer = in_process_healer(settings, store, history, published)
        try:
            await store.add_incident(IncidentRow("inc-bare", "pending", NOW - 60_000,
                                                 NOW - 1_000, "critical", "t"))
            await FollowUp(healer).tick(NOW)
            return await store.incidents(ids=["inc-bare"]), published
        finally:
            await store.close()
            await history.close()
            await healer.cmdb.graph.close()

    (incident,), published = asyncio.run(run())
    assert incident.status == "resolved"
    statuses = [e["attributes"]["status"] for e in published if e.get("type") == "incident"]
    assert statuses[-1] == "resolved", published
