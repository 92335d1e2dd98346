"""``dharma tail TOPIC``: decode and print any of our topics."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import typer

from dharma.streams.cli.common import console, load_settings


def _plain(value: Any) -> Any:
    """JSON-friendly copy: bytes shown as a short hex prefix, datetimes as ISO."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes {value[:16].hex()}>"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def tail(
    topic: str = typer.Argument(..., help="Topic name, e.g. ml.predictions or metrics.raw.dlq."),
    from_beginning: bool = typer.Option(False, help="Start at the oldest message."),
    limit: int = typer.Option(0, help="Stop after this many messages (0: no limit)."),
    timeout: float = typer.Option(0.0, help="Stop after this many idle seconds (0: never)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document per line."),
) -> None:
    """Print each message of TOPIC, decoded with the registry's schemas."""
    from confluent_kafka import Consumer
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from dharma.streams.admin import registry_client
    from dharma.streams.topics import by_name

    by_name(topic)  # a clear error for unknown topics
    settings = load_settings()
    decode = AvroDeserializer(registry_client(settings))
    consumer = Consumer({
        **settings.kafka.confluent_config(), "group.id": f"dharma-tail-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    seen, idle_since = 0, time.monotonic()
    try:
        while not limit or seen < limit:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if timeout and time.monotonic() - idle_since > timeout:
                    break
                continue
            idle_since = time.monotonic()
            value = decode(msg.value(), SerializationContext(topic, MessageField.VALUE))
            doc = {"partition": msg.partition(), "offset": msg.offset(), "value": _plain(value)}
            if as_json:
                typer.echo(json.dumps(doc))
            else:
                console.print(f"[dim]{topic}[{msg.partition()}]@{msg.offset()}[/]",
                              _plain(value))
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def register(app: typer.Typer) -> None:
    app.command()(tail)
