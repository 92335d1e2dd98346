"""PostgreSQL away while an alert arrives: the healing worker holds the batch
(partitions paused) and, once the store is back, opens the incident and requests its
remediation once; nothing is dead-lettered."""

from __future__ import annotations

import threading
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
    start_workers,
)
from trust_servers import own_postgres

from dharma.streams.records import now_ms
from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration

OUTAGE_S = 8.0


def test_postgres_away_when_an_alert_arrives_delays_the_remediation_and_loses_nothing(
        settings: Any, producer: Any, start_worker: Any, poll: Any, pick_port: Any) -> None:
    p = prefix()
    web = f"{p}web-01"
    with own_postgres(pick_port()) as pg:
        start_workers(start_worker, DHARMA_POSTGRES_DSN=pg.url,
                      DHARMA_WORKER_SINK_MAX_BACKOFF_S="1")
        build_estate(settings, producer, poll, [(web, "web", f"{p}team")])
        produce(producer, "metrics.raw", leak_history(web, now_ms() - 1000))
        seen: list[dict[str, Any]] = []
        with Tailer(settings, [INFRA, f"{ALERTS}.dlq"], from_beginning=True) as tail:
            def read() -> list[dict[str, Any]]:
                seen.extend(r for _t, r in tail.poll(0.2) if r.get("resource_id") == web
                            or p.encode() in (r.get("original_value") or b""))
                return seen

            pg.stop()
            produce(producer, ALERTS, [alert(web, f"High Memory Usage on {web}")])
            threading.Event().wait(OUTAGE_S)  # the outage itself
            pg.start()

            def requested() -> list[dict[str, Any]]:
                return [e for e in read() if e.get("type") == "remediation"
                        and e["attributes"]["status"] == "requested"]

            poll(requested, "the remediation requested once PostgreSQL is back", timeout=120)
            poll(lambda: [e for e in read() if e.get("type") == "incident"
                          and e["attributes"]["status"] == "acknowledged"],
                 "the incident acknowledged")
            assert len(requested()) == 1
    assert [e for e in seen if "reason" in e] == []  # no dead letter
