"""Helpers of the trust flow tests: the seed's request, readers of the outputs."""

from __future__ import annotations

import copy
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dharma.agents.trust import TrustConfig
from dharma.schemas import schema_text
from dharma.streams.admin import registry_client
from dharma.streams.topics import ALERTS, PREDICTIONS

MS = 1000


def business_ts(config: TrustConfig | None = None, hour: int = 14, minute: int = 30) -> datetime:
    """The latest past weekday at ``hour:minute`` in the engine's business-hours time zone."""
    config = config or TrustConfig()
    now = datetime.now(config.zone)
    day = now.replace(hour=hour, minute=minute, second=15, microsecond=0)
    while day > now or day.isoweekday() not in config.business_days:
        day -= timedelta(days=1)
    return day


def business_hours_now() -> dict[str, str]:
    """Worker settings under which the worker's clock reads business hours for the next
    few hours, whenever the test runs: a fixed-offset zone where it is now about noon,
    every day a business day (business hours are judged at the deciding clock)."""
    offset = 12 - datetime.now(UTC).hour  # -11 ... +12
    zone = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX signs: inverted
    return {"DHARMA_TRUST_TIMEZONE": zone, "DHARMA_TRUST_BUSINESS_DAYS": "1,2,3,4,5,6,7"}


def recent(seconds_ago: float = 60.0) -> datetime:
    """A moment ``seconds_ago`` before now (UTC): fresh for the worker's clock."""
    return datetime.now(UTC) - timedelta(seconds=seconds_ago)


def seed_event(event_id: str, ts: datetime, **overrides: Any) -> dict[str, Any]:
    """The seed's access request (admin_user_001 on device_12345) as an audit.logs record."""
    ms = int(ts.timestamp()) * MS
    record: dict[str, Any] = {
        "event_id": event_id,
        "ts": ms,
        "event_type": "access_request",
        "user_id": "admin_user_001",
        "roles": ["admin", "developer"],
        "resource": "database/production/customer_db",
        "action": "read",
        "device": {"device_id": "device_12345", "os": "Ubuntu 22.04", "encrypted": True,
                   "firewall": True, "antivirus": True, "compliance_score": 95.0,
                   "patch_level": "latest"},
        "mfa_enabled": True,
        "last_auth_ts": ms - 3 * 60 * MS,
        "source_ip": "10.0.1.50",
        "location": {"name": "Office", "country": None, "lat": None, "lon": None},
        "risk_reason": None,
    }
    device = overrides.pop("device", {})
    record = copy.deepcopy({**record, **overrides})
    record["device"].update(device)
    return record


def audit_key(settings: Any) -> Any:
    """``user -> serialised audit.logs key`` (Confluent Avro string, as producers send it)."""
    ser = AvroSerializer(registry_client(settings), schema_text("audit.logs-key"))
    return lambda user: ser(user, SerializationContext("audit.logs", MessageField.KEY))


def audit_rows(settings: Any, event_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        try:
            cur = conn.execute("SELECT * FROM access_audit WHERE event_id = %s", (event_id,))
        except psycopg.errors.UndefinedTable:
            return []
        cols = [c.name for c in cur.description or []]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def audited(settings: Any, poll: Any, event_id: str, count: int) -> list[dict[str, Any]]:
    """The audit rows of ``event_id``, once there are ``count`` of them."""
    return poll(lambda: len(rows := audit_rows(settings, event_id)) == count and rows,
                f"{count} audit rows of {event_id}")


class Outputs:
    """Decoded messages of ml.predictions and alerts.notifications produced since it was
    made, read with ``assign`` from the ends of the topics at that moment: no group join,
    and none of the session's earlier output to read and decode (the embedded broker
    reports a partition's end short of its last record batch: that batch is read too)."""

    TOPICS = (PREDICTIONS.name, ALERTS.name)

    def __init__(self, settings: Any) -> None:
        self._decode = AvroDeserializer(registry_client(settings))
        self._consumer = Consumer({**settings.kafka.confluent_config(), "log_level": 3,
                                   "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
        ends = []
        for topic in self.TOPICS:
            parts = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
            ends += [TopicPartition(topic, p, self._consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10)[1]) for p in parts]
        self._consumer.assign(ends)
        self.seen: list[tuple[str, dict[str, Any], float]] = []

    def pump(self) -> None:
        for msg in self._consumer.consume(500, 0.2):
            if not msg.error():
                topic = msg.topic() or ""
                value = self._decode(msg.value(), SerializationContext(topic, MessageField.VALUE))
                self.seen.append((topic, value, time.monotonic()))

    def close(self) -> None:
        self._consumer.close()

    def decisions(self, **match: Any) -> list[tuple[dict[str, Any], float]]:
        self.pump()
        return [(v, t) for topic, v, t in self.seen if topic == PREDICTIONS.name
                and v.get("kind") == "trust_decision"
                and all(v.get(k) == want for k, want in match.items())]

    def alerts(self, **match: Any) -> list[dict[str, Any]]:
        self.pump()
        return [v for topic, v, _ in self.seen if topic == ALERTS.name
                and all(v.get(k) == want for k, want in match.items())]


def decided(producer: Any, outputs: Outputs, poll: Any, event: dict[str, Any]) -> dict[str, Any]:
    """Produce ``event`` (keyed by its user) and return the first decision about it."""
    producer.produce("audit.logs", event["user_id"], event)
    producer.flush()
    (decision, _), *_ = poll(lambda: outputs.decisions(event_id=event["event_id"]),
                             f"{event['event_id']} decided")
    return decision
