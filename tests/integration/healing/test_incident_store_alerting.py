"""The circuit breaker's count of alerting group members, asked of PostgreSQL for the
members only: a firing alert of an incident not resolved (pending ones included)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from dharma.sinks.incidents import AlertRow, IncidentRow, IncidentStore

pytestmark = pytest.mark.integration


async def _stored(store: IncidentStore, p: str) -> None:
    for name, status, alerts in [
            ("open", "open", [("a", True), ("b", False)]),
            ("pending", "pending", [("c", True)]),
            ("resolved", "resolved", [("d", True)])]:
        incident = f"{p}{name}"
        await store.add_incident(IncidentRow(incident, status, 1, 1, "critical", name))
        for source, firing in alerts:
            await store.save_alert(AlertRow(incident, f"{p}{source}-fp", f"{p}{source}",
                                            "threshold", "critical", "s", {}, firing, 1, 1))


def test_alerting_names_the_members_with_a_firing_alert_in_a_live_incident(
        settings: Any) -> None:
    p = f"s{uuid.uuid4().hex[:6]}-"
    members = [f"{p}{m}" for m in "abcde"]

    async def run() -> set[str]:
        store = IncidentStore(settings.postgres.dsn.get_secret_value())
        await store.setup()
        try:
            await _stored(store, p)
            return await store.alerting(members)
        finally:
            await store.close()

    # b's alert ended, d's incident is resolved, e never alerted
    assert asyncio.run(run()) == {f"{p}a", f"{p}c"}
