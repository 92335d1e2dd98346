"""Incident events from outside (a human, a pager): they move an incident forward,
never back, and an acknowledgement never keeps an incident from being decided."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from dharma.agents.healing.engine import Healer, Publisher
from dharma.agents.healing.playbooks import load_playbooks
from dharma.agents.healing.signals import IncidentNote
from dharma.sinks.asset_changes import AssetChangeSink
from dharma.sinks.cmdb import Cmdb
from dharma.sinks.incidents import IncidentRow, IncidentStore
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import HealingSettings
from dharma.topologies.capabilities import graph

pytestmark = pytest.mark.integration

NOW = 1_800_000_000_000


def test_notes_move_incidents_forward_only(settings: Any, own_database: str) -> None:
    async def run() -> dict[str, str]:
        store, history = IncidentStore(own_database), AssetChangeSink(own_database)
        await store.setup()
        await history.setup()
        healer = Healer(store, Cmdb(graph(settings)), history, load_playbooks(),
                        Publisher(lambda _r: None, lambda _r: None), HealingSettings(),
                        PipelineMetrics(CollectorRegistry()))
        try:
            for incident, status in (("pending", "pending"), ("open", "open"),
                                     ("acked", "acknowledged")):
                await store.add_incident(IncidentRow(incident, status, NOW - 1000, NOW,
                                                     "critical", "t"))
            notes = [("pending", "acknowledged"), ("open", "acknowledged"),
                     ("acked", "open"), ("nobody", "resolved"), ("acked", "resolved")]
            for i, (incident, status) in enumerate(notes):
                await healer.on_note(IncidentNote(f"e{i}", incident, status, NOW), NOW)
            return {i.incident_id: i.status for i in await store.incidents()}
        finally:
            await store.close()
            await history.close()
            await healer.cmdb.graph.close()

    assert asyncio.run(run()) == {"pending": "pending", "open": "acknowledged",
                                  "acked": "resolved"}
