"""Dry-run mode decides and publishes what it would request, and requests nothing."""

from __future__ import annotations

from typing import Any

import pytest
from healing_support import (
    ALERTS,
    INFRA,
    alert,
    build_estate,
    leak_history,
    prefix,
    produce,
    remediations_on,
    start_workers,
    store_rows,
)

from dharma.streams.records import now_ms
from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration


def test_dry_run_publishes_the_decision_and_never_requests(
        settings: Any, producer: Any, start_worker: Any, poll: Any) -> None:
    p = prefix()
    web = f"{p}web-01"
    start_workers(start_worker, DHARMA_HEALING_DRY_RUN="true")
    build_estate(settings, producer, poll, [(web, "web", f"{p}team")])
    history = leak_history(web, now_ms() - 1000)
    produce(producer, "metrics.raw", history)
    poll(lambda: store_rows(settings, "SELECT count(*) AS n FROM metrics_raw WHERE source = %s",
                            web)[0]["n"] >= len(history), "the leak's samples stored")
    with Tailer(settings, [INFRA], from_beginning=True) as tail:
        produce(producer, ALERTS, [alert(web, f"High Memory Usage on {web}")])
        seen: list[dict[str, Any]] = []

        def decided() -> list[dict[str, Any]]:
            seen.extend(r for _t, r in tail.poll(0.2) if r.get("resource_id") == web
                        and r.get("type") == "remediation")
            return seen

        poll(decided, "the dry-run decision published")
    [decision] = seen
    attrs = decision["attributes"]
    assert (attrs["status"], attrs["guard"], attrs["dry_run"], attrs["action"]) == (
        "skipped", "dry_run", True, "restart_service")
    assert attrs["reason"] == "would restart_service (dry run)"
    assert [r["status"] for r in remediations_on(settings, p)] == ["skipped"]
