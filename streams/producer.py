"""A plain confluent-kafka producer with Confluent's own ``AvroSerializer``.

What an external producer does; our generator and benchmarks use it so the
agents are always fed through the same interoperable path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dharma.schemas import schema_text
from dharma.streams.settings import Settings

#: How long a paced source's records wait to share a record batch (the embedded
#: broker's cost per fetch grows with the record batches a partition holds).
PACED_LINGER_MS = 1000


def batching_producer(settings: Settings, linger_ms: int = PACED_LINGER_MS) -> Producer:
    """A producer whose records wait up to ``linger_ms`` to leave together: about one
    record batch per partition per ``linger_ms`` instead of one per burst."""
    return Producer({**settings.kafka.confluent_config(), "linger.ms": linger_ms,
                     "queue.buffering.max.messages": 1_000_000})


class AvroProducer:
    """Serialises keys and values with the registry, one serializer per subject."""

    def __init__(self, producer: Producer, registry: SchemaRegistryClient) -> None:
        self.producer = producer
        self.registry = registry
        self._serializers: dict[str, AvroSerializer] = {}

    def _serialize(self, topic: str, field: MessageField, value: Any) -> bytes:
        subject = f"{topic}-{'key' if field == MessageField.KEY else 'value'}"
        ser = self._serializers.get(subject)
        if ser is None:
            ser = self._serializers[subject] = AvroSerializer(self.registry, schema_text(subject))
        data = ser(value, SerializationContext(topic, field))
        assert data is not None
        return bytes(data)

    def produce(self, topic: str, key: str | None, value: dict[str, Any],
                on_delivery: Callable[[KafkaError | None, Message], None] | None = None) -> None:
        """Queue one record; retries ``BufferError`` by serving delivery reports;
        ``on_delivery`` hears whether the broker took it."""
        k = self._serialize(topic, MessageField.KEY, key) if key is not None else None
        v = self._serialize(topic, MessageField.VALUE, value)
        while True:
            try:
                self.producer.produce(topic, key=k, value=v, on_delivery=on_delivery)
                return
            except BufferError:
                self.producer.poll(0.1)

    def poll(self, timeout: float = 0.0) -> None:
        self.producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        remaining: int = self.producer.flush(timeout)
        return remaining
