"""What the executor tests share: the ``infrastructure.events`` records read back, from the
beginning, past the records of other tests that nothing can decode."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dharma.streams.admin import registry_client

TOPIC = "infrastructure.events"


class Events:
    """The decoded records of ``infrastructure.events`` so far (a record that cannot be
    decoded, e.g. a hostile one another test produced, is passed over, not fatal)."""

    def __init__(self, settings: Any) -> None:
        self.decode = AvroDeserializer(registry_client(settings))
        self.consumer = Consumer({**settings.kafka.confluent_config(),
                                  "group.id": f"t-events-{uuid.uuid4().hex[:8]}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "log_level": 3})
        self.consumer.subscribe([TOPIC])
        self.seen: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Every record read so far, after those that arrived within 0.2 s."""
        context = SerializationContext(TOPIC, MessageField.VALUE)
        for msg in self.consumer.consume(1000, 0.2):
            if msg.error():
                continue
            try:
                self.seen.append(self.decode(msg.value(), context))
            except Exception:
                continue
        return self.seen

    def reports(self, remediation_id: str) -> list[dict[str, Any]]:
        """The executor's reports on ``remediation_id`` (its requests left out), each
        once: a report published again (at least once) has the same event id."""
        found = {v["event_id"]: v for v in self.read() if v["type"] == "remediation"
                 and v["attributes"].get("remediation_id") == remediation_id
                 and v["attributes"].get("status") != "requested"}
        return list(found.values())

    def statuses(self, remediation_id: str) -> list[str]:
        return [v["attributes"]["status"] for v in self.reports(remediation_id)]

    def close(self) -> None:
        self.consumer.close()


def ms(ts: datetime) -> int:
    """Epoch milliseconds of a decoded timestamp (the Avro deserializer gives datetimes)."""
    return round(ts.timestamp() * 1000)
