"""The seed's worked example through Kafka: "High Memory Usage on web-server-01",
memory at 92 % against an 80 % threshold → memory_leak → restart_service (risk LOW,
no approval, 30 s estimated downtime) → the executor succeeds → memory back under
the threshold for the window → resolved, the timeline in PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from healing_support import (
    ALERTS,
    alert,
    build_estate,
    executor,
    incidents_on,
    leak_history,
    prefix,
    produce,
    remediations_on,
    sample,
    start_workers,
    store_rows,
)

from dharma.streams.records import now_ms

pytestmark = pytest.mark.integration


def stored_samples(settings: Any, source: str) -> int:
    rows = store_rows(settings, "SELECT count(*) AS n FROM metrics_raw WHERE source = %s", source)
    return int(rows[0]["n"]) if rows else 0


def test_high_memory_on_web_server_01_is_restarted_verified_and_resolved(
        settings: Any, producer: Any, start_worker: Any, poll: Any) -> None:
    p = prefix()
    web = f"{p}web-server-01"
    start_workers(start_worker)
    build_estate(settings, producer, poll, [(web, "web", f"{p}frontend"),
                                            (f"{p}web-server-02", "web", f"{p}frontend")])
    history = leak_history(web, now_ms() - 1000)
    produce(producer, "metrics.raw", history)
    poll(lambda: stored_samples(settings, web) >= len(history), "the leak's samples stored")

    def recover(_request: dict[str, Any]) -> None:
        produce(producer, "metrics.raw", [sample(web, "memory_utilization", 45.0, now_ms())])

    with executor(settings, producer, {web}, on_success=recover) as ex:
        produce(producer, ALERTS, [alert(web, f"High Memory Usage on {web}")])

        def resolved() -> bool:
            if ex.requests:  # memory stays at 45 % after the restart, sampled as it goes
                produce(producer, "metrics.raw",
                        [sample(web, "memory_utilization", 45.0, now_ms())])
            return any(i["status"] == "resolved" for i in incidents_on(settings, p))

        poll(resolved, "the incident resolved", describe=lambda: (
            f"incidents {incidents_on(settings, p)}, remediations {remediations_on(settings, p)}"))
        poll(lambda: ex.of("incident", "resolved"), "the resolution published")

    [incident] = incidents_on(settings, p)
    assert (incident["title"], incident["root"], incident["category"], incident["severity"]) == (
        f"High Memory Usage on {web}", web, "memory_leak", "critical")
    assert incident["symptoms"] == [] and incident["mttr_ms"] > 0
    [remediation] = remediations_on(settings, p)
    assert (remediation["action"], remediation["risk"], remediation["downtime_s"],
            remediation["status"], remediation["outcome"], remediation["approved_by"]) == (
        "restart_service", "LOW", 30, "succeeded", "passed", None)
    [request] = ex.requests
    attrs = request["attributes"]
    assert (attrs["action"], attrs["risk"], attrs["estimated_downtime_s"], attrs["playbook"],
            attrs["incident_id"]) == ("restart_service", "LOW", 30, remediation["playbook"],
                                      incident["incident_id"])
    statuses = [e["attributes"]["status"] for e in ex.of("incident")]
    assert statuses == ["open", "acknowledged", "resolved"]
    kinds = [r["kind"] for r in store_rows(
        settings, "SELECT kind FROM incident_timeline WHERE incident_id = %s ORDER BY at, key",
        incident["incident_id"])]
    assert {"alert", "opened", "decision", "executor", "verification", "resolved"} <= set(kinds)
    history_rows = store_rows(settings, "SELECT * FROM asset_changes WHERE resource_id = %s "
                              "AND kind = 'remediation'", web)
    assert [r["action"] for r in history_rows] == ["restart_service"]
