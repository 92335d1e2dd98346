"""``GET /api/v1/pipeline/health`` and ``/metrics``: lag of consumer groups per partition,
dead letters by reason, the feed's rates and its undecodable records; the API's metrics."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from live_helpers import Records

pytestmark = pytest.mark.integration


def _health(api: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    answer = api.get("/api/v1/pipeline/health", headers=headers)
    assert answer.status_code == 200, answer.text
    health: dict[str, Any] = answer.json()
    return health


def _commit(settings: Any, group: str, topic: str, partition: int, offset: int) -> None:
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


def test_health_shows_lag_per_group_and_partition(
        api: httpx.Client, admin_headers: dict[str, str], settings: Any, poll: Any) -> None:
    records = Records(settings)
    for _ in range(3):
        records.alert(f"lag-{uuid.uuid4().hex[:6]}")
    records.flush()
    ends = {p["partition"]: p["end_offset"] for t in _health(api, admin_headers)["topics"]
            if t["topic"] == "alerts.notifications" for p in t["partitions"]}
    busy = max(ends, key=lambda p: ends[p])
    assert ends[busy] > 0
    group = f"lagging-{uuid.uuid4().hex[:6]}"
    _commit(settings, group, "alerts.notifications", busy, 0)

    def lag() -> int | None:
        health = _health(api, admin_headers)
        for topic in health["topics"]:
            for part in topic["partitions"]:
                if topic["topic"] == "alerts.notifications" and part["partition"] == busy:
                    found: int | None = part["lag"].get(group)
                    return found
        return None

    assert poll(lag, "the group's lag shows") >= ends[busy]
    health = _health(api, admin_headers)
    assert health["lag_error"] is None
    assert {t["topic"] for t in health["topics"]} >= {"metrics.raw", "metrics.raw.dlq"}


def test_dead_letters_by_reason_and_undecodable_records_counted(
        api: httpx.Client, admin_headers: dict[str, str], settings: Any, poll: Any) -> None:
    records = Records(settings)
    reason = f"value: not finite (nan) {uuid.uuid4().hex[:6]}"
    before = _health(api, admin_headers)["feed"]["undecodable"]
    for _ in range(2):
        records.dead_letter("metrics.raw", reason)
    records.send_raw("alerts.notifications", b"\x00\x00\x00\x00\x01not avro")
    after = records.alert(f"after-{uuid.uuid4().hex[:6]}")
    records.flush()

    def counted() -> list[dict[str, Any]]:
        return [d for d in _health(api, admin_headers)["dead_letters"] if d["reason"] == reason]

    assert poll(counted, "the dead letters are counted") == [
        {"topic": "metrics.raw", "error_kind": "contract_violation", "reason": reason, "count": 2}]
    poll(lambda: api.get("/api/v1/alerts", params={"resource": after["source"]},
                         headers=admin_headers).json()["items"], "the stream goes on")
    health = _health(api, admin_headers)
    assert health["feed"]["undecodable"] >= before + 1 and health["feed"]["caught_up"]
    rates = {r["topic"]: r["per_s"] for r in health["rates"]}
    assert rates.get("alerts.notifications", 0) > 0
    assert health["live"] == {"subscribers": 0, "dropped": 0}


def test_metrics_are_prometheus_text_behind_the_token(
        api: httpx.Client, admin_headers: dict[str, str]) -> None:
    assert api.get("/api/v1/metrics").status_code == 401
    text = api.get("/api/v1/metrics", headers=admin_headers).text
    assert "dharma_api_live_dropped_total 0.0" in text
    assert "dharma_api_feed_records_total{topic=" in text
