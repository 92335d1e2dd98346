"""Contract-valid records for the live API's tests, produced through the registry codec."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Producer

from dharma.streams.admin import registry_client
from dharma.streams.alerting import alert_record
from dharma.streams.codec import AvroWire

ANOMALY = "dharma.predictions.AnomalyPrediction"
DECISION = "dharma.predictions.TrustDecision"


def now_ms() -> int:
    return int(time.time() * 1000)


class Records:
    """Produces records of our contracts (keys and values in the wire format)."""

    def __init__(self, settings: Any) -> None:
        self.wire = AvroWire(registry_client(settings))
        self.producer = Producer(settings.kafka.confluent_config())

    def send(self, topic: str, key: str, value: Any, timestamp: int | None = None) -> None:
        """Queue one record (``value``: a record, or ``(branch, record)`` for a union)."""
        self.producer.produce(topic, key=self.wire.encode_key(f"{topic}-key", key),
                              value=self.wire.encode(f"{topic}-value", value),
                              timestamp=timestamp or 0)

    def send_raw(self, topic: str, value: bytes) -> None:
        self.producer.produce(topic, value=value)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

    def alert(self, source: str, status: str = "firing", severity: str = "warning",
              ts: int | None = None, subject: str = "cpu", summary: str = "cpu is odd",
              labels: dict[str, str] | None = None, timestamp: int | None = None
              ) -> dict[str, Any]:
        ts = ts or now_ms()
        record = alert_record(kind="anomaly", component="anomaly", source=source,
                              subject=subject, status=status, severity=severity,  # type: ignore[arg-type]
                              summary=summary, ts=ts, episode_start=ts, labels=labels)
        self.send("alerts.notifications", record["fingerprint"], record, timestamp)
        return record

    def prediction(self, source: str, metric: str, ts: int, value: float, score: float = 0.1,
                   anomaly: bool = False, warming_up: bool = False, confidence: float = 1.0,
                   expected: float | None = None) -> dict[str, Any]:
        record = {"kind": "anomaly", "prediction_id": f"{source}|{metric}@{ts}",
                  "source": source, "metric": metric, "ts": ts, "value": value,
                  "model": "dharma-likelihood/1", "anomaly_score": score, "is_anomaly": anomaly,
                  "warming_up": warming_up, "confidence": confidence, "expected": expected}
        self.send("ml.predictions", f"{source}|{metric}", (ANOMALY, record))
        return record

    def decision(self, user: str, resource: str, decision: str = "DENY") -> dict[str, Any]:
        record = {"kind": "trust_decision", "decision_id": uuid.uuid4().hex,
                  "event_id": uuid.uuid4().hex, "ts": now_ms(), "user_id": user,
                  "device_id": "d1", "resource": resource, "action": "read",
                  "decision": decision, "trust_score": 20.0, "trust_level": "LOW",
                  "device_trust": 20.0, "user_trust": 20.0, "context_trust": 20.0,
                  "policy_id": None, "policy_version": "v1", "reasons": ["test"],
                  "expires_in": 0, "session_id": None}
        self.send("ml.predictions", user, (DECISION, record))
        return record

    def dead_letter(self, topic: str, reason: str) -> dict[str, Any]:
        record = {"topic": topic, "partition": 0, "offset": 1, "reason": reason,
                  "error_kind": "contract_violation", "original_key": None,
                  "original_value": b"\x00bad", "ts": now_ms()}
        self.producer.produce(f"{topic}.dlq", value=self.wire.encode(f"{topic}.dlq-value", record))
        return record
