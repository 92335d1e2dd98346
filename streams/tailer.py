"""Read our topics as an outside subscriber would: confluent-kafka + ``AvroDeserializer``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dharma.streams.admin import registry_client
from dharma.streams.settings import Settings


class Tailer:
    """Decoded messages of ``topics``, from the end (or the beginning) of each."""

    def __init__(self, settings: Settings, topics: Sequence[str],
                 from_beginning: bool = False, group: str | None = None) -> None:
        self._decode = AvroDeserializer(registry_client(settings))
        self._consumer = Consumer({
            **settings.kafka.confluent_config(),
            "group.id": group or f"dharma-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "log_level": 3,
        })
        self._consumer.subscribe(list(topics))
        #: Records passed over because they did not decode.
        self.undecodable = 0

    def poll_messages(self, timeout: float = 0.5, max_messages: int = 500) -> list[Any]:
        """Raw messages (with partition, offset, key) and their decoded values; a record
        that does not decode (a hostile or broken producer's) is passed over and counted
        in :attr:`undecodable`, so that one bad record never stops a reader."""
        out = []
        for msg in self._consumer.consume(max_messages, timeout):
            if msg.error():
                continue
            topic = msg.topic() or ""
            try:
                value = self._decode(msg.value(), SerializationContext(topic, MessageField.VALUE))
            except Exception:  # whatever the record is, the reader goes on
                self.undecodable += 1
                continue
            out.append((msg, value))
        return out

    def poll(self, timeout: float = 0.5) -> list[tuple[str, Any]]:
        """``(topic, decoded value)`` pairs that arrived within ``timeout``."""
        return [(msg.topic(), value) for msg, value in self.poll_messages(timeout)]

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> Tailer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
