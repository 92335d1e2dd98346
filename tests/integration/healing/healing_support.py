"""What the self-healing flow tests share: an estate in the CMDB under a unique prefix,
alerts and metric samples on the bus, an executor answering requests, and the
incident store read back from PostgreSQL.

Every test names its resources (and their team) under its own prefix, since one
PostgreSQL, graph and broker serve the session; playbook rate limits count per
playbook across the session, so tests that are not about them lift the limit.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry
from psycopg.rows import dict_row

from dharma.agents.healing.engine import Healer, Publisher
from dharma.agents.healing.playbooks import load_playbooks
from dharma.sinks.cmdb import Cmdb
from dharma.sinks.incidents import (
    AlertRow,
    IncidentRow,
    IncidentStore,
    RemediationRow,
    TimelineEntry,
)
from dharma.streams.alerting import alert_record
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.producer import AvroProducer
from dharma.streams.records import now_ms
from dharma.streams.settings import HealingSettings
from dharma.streams.tailer import Tailer
from dharma.topologies import capabilities

INFRA = "infrastructure.events"
ALERTS = "alerts.notifications"

#: Settings a healing worker of these tests runs with: short waits, no rate limit.
FAST = {"DHARMA_HEALING_GROUP_WAIT_S": "1.5", "DHARMA_HEALING_GROUP_INTERVAL_S": "1",
        "DHARMA_HEALING_TICK_S": "0.3", "DHARMA_HEALING_VERIFY_WINDOW_S": "3",
        "DHARMA_HEALING_VERIFY_GRACE_S": "0", "DHARMA_HEALING_VERIFY_SETTLE_S": "2",
        "DHARMA_HEALING_RATE_LIMIT_PER_HOUR": "1000", "DHARMA_WORKER_BATCH_WITHIN_S": "0.1"}


def prefix() -> str:
    return f"h{uuid.uuid4().hex[:6]}-"


def asset(rid: str, asset_type: str, team: str, ts: int) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "type": "asset", "resource_id": rid,
            "attributes": {"action": "created", "asset_type": asset_type, "name": rid,
                           "provider": "aws", "region": "eu-west-1", "team": team,
                           "env": "prod", "instance_type": "m5.large", "hourly_cost": 0.1}}


def depends(rid: str, target: str, ts: int) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "type": "dependency", "resource_id": rid,
            "attributes": {"target_id": target, "relation": "DEPENDS_ON", "action": "added"}}


def infra(kind: str, rid: str, attributes: dict[str, Any], ts: int | None = None
          ) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": now_ms() if ts is None else ts, "type": kind,
            "resource_id": rid, "attributes": attributes}


def alert(source: str, summary: str, metric: str = "memory_utilization",
          threshold: float = 80, value: float = 92, severity: str = "critical",
          ts: int | None = None, status: str = "firing") -> dict[str, Any]:
    """A threshold alert as Prometheus Alertmanager bridged onto the bus would carry it."""
    at = now_ms() if ts is None else ts
    return alert_record(kind="threshold", component="prometheus", source=source,
                        subject=metric, status=status, severity=severity,  # type: ignore[arg-type]
                        summary=summary, ts=at, episode_start=at,
                        labels={"metric": metric, "threshold": str(threshold),
                                "value": str(value)})


def sample(source: str, metric: str, value: float, ts: int) -> dict[str, Any]:
    return {"source": source, "metric": metric, "value": value, "ts": ts, "labels": {},
            "unit": "percent"}


def produce(producer: AvroProducer, topic: str, records: list[dict[str, Any]]) -> None:
    key = {INFRA: "resource_id", ALERTS: "fingerprint", "metrics.raw": "source"}[topic]
    for record in records:
        producer.produce(topic, record[key], record)
    producer.flush()


def start_workers(start_worker: Any, **env: str) -> None:
    """The topologies self-healing needs: the CMDB, ingest (the metrics it reads) and
    healing itself (with :data:`FAST` settings, overridden by ``env``)."""
    start_worker("cmdb")
    start_worker("ingest")
    start_worker("healing", **{**FAST, **env})


def build_estate(settings: Any, producer: AvroProducer, poll: Callable[..., Any],
                 assets: Sequence[tuple[str, str, str]],
                 edges: Sequence[tuple[str, str]] = ()) -> None:
    """Assets (id, type, team) and DEPENDS_ON edges (from, to), dated an hour ago, once
    the CMDB holds them all."""
    ts = now_ms() - 3_600_000
    produce(producer, INFRA, [asset(rid, kind, team, ts) for rid, kind, team in assets]
            + [depends(a, b, ts + 1) for a, b in edges])
    graph = Cmdb(capabilities.graph(settings)).graph
    ids = [rid for rid, _, _ in assets]

    def stored() -> bool:
        rows = graph.query_sync(
            "MATCH (a:Asset) WHERE a.id IN $ids AND NOT coalesce(a.placeholder, false) "
            "OPTIONAL MATCH (a)-[r:DEPENDS_ON]->() RETURN count(DISTINCT a) AS n, "
            "count(r) AS e", ids=ids)
        return bool(rows) and (rows[0]["n"], rows[0]["e"]) == (len(ids), len(edges))

    poll(stored, "the estate in the CMDB")


def leak_history(source: str, end: int, minutes: int = 60, top: float = 92.0
                 ) -> list[dict[str, Any]]:
    """Memory climbing steadily to ``top`` over the last hour: a leak."""
    start = 45.0
    steps = minutes * 2
    return [sample(source, "memory_utilization",
                   round(start + (top - start) * i / steps, 2), end - (steps - i) * 30_000)
            for i in range(steps + 1)]


@dataclass
class Executor:
    """Answers remediation requests on the bus like an executor: started, then
    succeeded (or failed when ``fail`` says so), and calls ``on_success`` after."""

    settings: Any
    producer: AvroProducer
    targets: set[str]
    fail: Callable[[dict[str, Any]], bool] = lambda _request: False
    on_success: Callable[[dict[str, Any]], None] = lambda _request: None
    requests: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with Tailer(self.settings, [INFRA], from_beginning=True) as tail:
            while not self._stop.is_set():
                for _topic, event in tail.poll(0.2):
                    if event.get("resource_id") not in self.targets:
                        continue
                    self.events.append(event)
                    if (event["type"] == "remediation"
                            and event["attributes"]["status"] == "requested"):
                        self._answer(event)

    def _answer(self, request: dict[str, Any]) -> None:
        self.requests.append(request)
        attrs = request["attributes"]
        failed = self.fail(request)
        for status in ("started", "failed" if failed else "succeeded"):
            produce(self.producer, INFRA, [infra("remediation", request["resource_id"], {
                **attrs, "status": status, "reason": f"test executor: {status}"})])
        if not failed:
            self.on_success(request)

    def of(self, kind: str, status: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind
                and (status is None or e["attributes"]["status"] == status)]


@contextmanager
def executor(settings: Any, producer: AvroProducer, targets: set[str],
             **kwargs: Any) -> Iterator[Executor]:
    ex = Executor(settings, producer, targets, **kwargs)
    thread = threading.Thread(target=ex.run, daemon=True)
    thread.start()
    try:
        yield ex
    finally:
        ex._stop.set()
        thread.join(10)


def store_rows(settings: Any, query: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True,
                         row_factory=dict_row) as conn:
        try:
            return conn.execute(query, params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def incidents_on(settings: Any, prefix_: str) -> list[dict[str, Any]]:
    return store_rows(settings, "SELECT * FROM incidents WHERE root LIKE %s OR incident_id IN "
                      "(SELECT incident_id FROM incident_alerts WHERE source LIKE %s) "
                      "ORDER BY opened_at", prefix_ + "%", prefix_ + "%")


def remediations_on(settings: Any, prefix_: str) -> list[dict[str, Any]]:
    return store_rows(settings, "SELECT * FROM remediations WHERE target LIKE %s "
                      "ORDER BY decided_at", prefix_ + "%")


def write_incidents(dsn: str, incidents: Sequence[IncidentRow],
                    alerts: Sequence[AlertRow] = (), remediations: Sequence[RemediationRow] = (),
                    timeline: Sequence[TimelineEntry] = ()) -> None:
    """Store incidents with their alerts, remediations and timeline, as healing does."""
    async def go() -> None:
        store = IncidentStore(dsn)
        await store.setup()
        try:
            for incident in incidents:
                await store.add_incident(incident)
            for a in alerts:
                await store.save_alert(a)
            for r in remediations:
                await store.add_remediation(r)
            await store.write(timeline)
        finally:
            await store.close()

    asyncio.run(go())


def in_process_healer(settings: Any, store: Any, history: Any,
                      published: list[dict[str, Any]]) -> Healer:
    """A ``Healer`` over ``store`` and ``history`` with the default playbooks and the
    session's graph, its records appended to ``published`` (a follow-up tick driven by
    the test, no worker)."""
    return Healer(store, Cmdb(capabilities.graph(settings)), history, load_playbooks(),
                  Publisher(published.append, published.append), HealingSettings(),
                  PipelineMetrics(CollectorRegistry()))
