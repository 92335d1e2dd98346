"""What ``dharma bench api`` stores before it times the API: access decisions in the
audit table, series and alerts on their topics, incidents in the healing store.

Everything is generated from a seed and dated just before ``now_ms``, so a run
is reproducible and every time filter of the API sees it.  Each store is filled
through its own write path: audit rows by :class:`~dharma.sinks.audit.AuditSink`,
incidents by :class:`~dharma.sinks.incidents.IncidentStore`, series as the
``ml.predictions`` records the anomaly worker emits and alerts as the
``alerts.notifications`` records the capabilities emit (the API's live views read
both topics as in production).

>>> rows = decision_rows(1_000, seed=3, now_ms=10_000_000_000)
>>> len(rows), len({r["decision_id"] for r in rows})
(1000, 1000)
>>> sorted({r["decision"] for r in rows})
['ALLOW', 'CHALLENGE', 'DENY', 'REVOKE']
>>> rows == decision_rows(1_000, seed=3, now_ms=10_000_000_000)
True
>>> key, value = next(prediction_records(8, points=2, seed=1, now_ms=10_000_000_000))
>>> key == f"{value['source']}|{value['metric']}", value["kind"]
(True, 'anomaly')
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from dharma.sinks.audit import AuditSink, audit_row
from dharma.sinks.incidents import IncidentRow, IncidentStore, TimelineEntry
from dharma.streams.alerting import Severity, Status, alert_record

__all__ = ["METRICS", "alert_notification", "alert_records", "decision_rows",
           "prediction_record", "prediction_records",
           "series_source", "store_decisions", "store_incidents", "user_of"]

#: Metrics of each host: four series a host.
METRICS = ("cpu_utilization", "memory_utilization", "disk_io", "network_in")
DAY_MS = 86_400_000
MINUTE_MS = 60_000

_RESOURCES = ("database/production/customer_db", "database/staging/orders",
              "api/v1/alerts", "k8s/production/payments", "s3/finance/reports",
              "ssh/production/bastion")
_OUTCOMES = (("ALLOW", 0.70), ("DENY", 0.17), ("CHALLENGE", 0.10), ("REVOKE", 0.03))
_SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
_DENY_REASONS = ("device not compliant", "trust level LOW below MEDIUM", "MFA required",
                 "no policy matched", "impossible travel", "outside business hours")


def user_of(i: int) -> str:
    """The ``i``-th user of the seeded decisions."""
    return f"user_{i:04d}"


def series_source(i: int) -> str:
    """The resource of the ``i``-th series (four series a host)."""
    return f"host-{i // len(METRICS):05d}"


def _outcome(rng: random.Random) -> str:
    x = rng.random()
    for outcome, share in _OUTCOMES:
        if x < share:
            return outcome
        x -= share
    return "ALLOW"


def decision_rows(n: int, seed: int, now_ms: int, users: int = 500,
                  span_ms: int = DAY_MS) -> list[dict[str, Any]]:
    """``n`` audit rows (:func:`~dharma.sinks.audit.audit_row`) of ``users`` users, dated
    over the ``span_ms`` before ``now_ms``: 70 % ALLOW, 17 % DENY, 10 % CHALLENGE,
    3 % REVOKE."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        decision = _outcome(rng)
        ts = now_ms - span_ms + (i * span_ms) // max(n, 1)
        user = user_of(rng.randrange(users))
        denied = decision in ("DENY", "CHALLENGE")
        record = {
            "decision_id": f"bench-{seed}-{i}", "event_id": f"bench-evt-{seed}-{i}", "ts": ts,
            "user_id": user, "device_id": f"dev_{rng.randrange(900):03d}",
            "resource": rng.choice(_RESOURCES), "action": rng.choice(("read", "write")),
            "decision": decision, "trust_score": round(rng.uniform(20, 95), 1),
            "trust_level": rng.choice(("LOW", "MEDIUM", "HIGH")),
            "policy_id": None if denied else "bench-policy", "policy_version": "bench",
            "reasons": [rng.choice(_DENY_REASONS)] if denied or decision == "REVOKE" else [],
            "session_id": f"sess-{seed}-{i}" if decision in ("ALLOW", "REVOKE") else None,
        }
        request = {"user_id": user, "source_ip": f"10.0.{rng.randrange(256)}.{i % 256}",
                   "mfa_enabled": rng.random() < 0.8}
        rows.append(audit_row(record, request))
    return rows


async def store_decisions(dsn: str, rows: list[dict[str, Any]], chunk: int = 5_000) -> int:
    """Append ``rows`` through the audit sink's own write path; rows newly stored."""
    sink = AuditSink(dsn)
    await sink.ready()
    stored = 0
    try:
        for start in range(0, len(rows), chunk):
            stored += await sink.write(rows[start:start + chunk])
    finally:
        await sink.close()
    return stored


def prediction_record(i: int, step: int, ts: int, rng: random.Random
                      ) -> tuple[str, dict[str, Any]]:
    """The ``step``-th anomaly score of the ``i``-th series, at ``ts``, keyed as the
    anomaly worker keys it: about 1 % anomalous, the first two steps warming up."""
    source, metric = series_source(i), METRICS[i % len(METRICS)]
    expected = 40.0 + (i % 37)
    anomalous = step >= 2 and rng.random() < 0.01
    value = expected + (35.0 if anomalous else rng.gauss(0.0, 3.0))
    score = rng.uniform(0.9, 1.0) if anomalous else rng.uniform(0.0, 0.4)
    return f"{source}|{metric}", {
        "kind": "anomaly", "prediction_id": f"{source}|{metric}@{ts}",
        "source": source, "metric": metric, "ts": ts, "value": value,
        "model": "bench/1", "anomaly_score": score, "is_anomaly": anomalous,
        "warming_up": step < 2, "confidence": min(1.0, (step + 1) / 3),
        "expected": expected}


def prediction_records(series: int, points: int, seed: int, now_ms: int,
                       step_ms: int = MINUTE_MS) -> Iterator[tuple[str, dict[str, Any]]]:
    """``points`` anomaly scores of each of ``series`` series (:func:`prediction_record`),
    a minute apart, the last a minute before ``now_ms``."""
    rng = random.Random(seed)
    start = now_ms - (points + 1) * step_ms
    for step in range(points):
        for i in range(series):
            yield prediction_record(i, step, start + step * step_ms, rng)


def alert_notification(i: int, ts: int, rng: random.Random, sources: int = 500,
                       prefix: str = "host") -> tuple[str, dict[str, Any]]:
    """The ``i``-th alert notification, on one of ``sources`` resources (every fourth
    resolved, the others firing), at ``ts``; keyed by its fingerprint."""
    source = f"{prefix}-{rng.randrange(sources):05d}"
    status: Status = "resolved" if i % 4 == 3 else "firing"
    record = alert_record(
        kind="threshold", component="prometheus", source=source,
        subject=METRICS[i % len(METRICS)], status=status, severity=rng.choice(_SEVERITIES),
        summary=f"{METRICS[i % len(METRICS)]} high on {source}", ts=ts,
        episode_start=ts - 60_000, labels={"team": f"team-{i % 12}"})
    return record["fingerprint"], record


def alert_records(n: int, seed: int, now_ms: int, sources: int = 500, prefix: str = "host"
                  ) -> Iterator[tuple[str, dict[str, Any]]]:
    """``n`` alert notifications (:func:`alert_notification`), dated a second apart up
    to ``now_ms``."""
    rng = random.Random(seed)
    for i in range(n):
        yield alert_notification(i, now_ms - (n - i) * 1_000, rng, sources, prefix)


async def store_incidents(dsn: str, n: int, seed: int, now_ms: int) -> int:
    """``n`` incidents with a short timeline each, through the healing store."""
    rng = random.Random(seed)
    store = IncidentStore(dsn)
    await store.ready()
    added = 0
    try:
        for i in range(n):
            opened = now_ms - (n - i) * 30_000
            incident = IncidentRow(
                incident_id=f"inc-bench-{seed}-{i}",
                status=rng.choice(("open", "acknowledged", "resolved")), opened_at=opened,
                due_at=opened + 30_000, severity=rng.choice(("warning", "critical")),
                title=f"High memory on {series_source(4 * i)}", root=series_source(4 * i),
                category="memory_leak", confidence=0.8)
            added += await store.add_incident(incident)
            await store.write([TimelineEntry(f"{incident.incident_id}:{k}",
                                             incident.incident_id, opened + k * 1_000, kind,
                                             {"summary": f"{kind} of the bench"})
                               for k, kind in enumerate(("alert", "opened", "decision"))])
    finally:
        await store.close()
    return added
