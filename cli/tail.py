"""``dharma tail TOPIC``: decode and print any of our topics."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import typer

from dharma.cli.common import console, load_settings


def _plain(value: Any) -> Any:
    """JSON-friendly copy: bytes shown as a short hex prefix, datetimes as ISO, decimals
    (bill amounts) as their exact text.

    >>> _plain({"BilledCost": Decimal("0.998400000000000000"), "raw": b"ab"})
    {'BilledCost': '0.998400000000000000', 'raw': '<2 bytes 6162>'}
    """
    if isinstance(value, Decimal):
        return str(value)
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
    from dharma.streams.tailer import Tailer
    from dharma.streams.topics import by_name

    by_name(topic)  # a clear error for unknown topics
    seen, idle_since = 0, time.monotonic()
    with Tailer(load_settings(), [topic], from_beginning=from_beginning) as tailer:
        try:
            while not limit or seen < limit:
                batch = tailer.poll_messages(0.5, max_messages=limit - seen if limit else 500)
                if not batch and timeout and time.monotonic() - idle_since > timeout:
                    break
                for msg, value in batch:
                    idle_since = time.monotonic()
                    _print(msg.partition(), msg.offset(), topic, value, as_json)
                    seen += 1
        except KeyboardInterrupt:
            pass


def _print(partition: int, offset: int, topic: str, value: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"partition": partition, "offset": offset, "value": _plain(value)}))
    else:
        console.print(f"[dim]{topic}[{partition}]@{offset}[/]", _plain(value))


def register(app: typer.Typer) -> None:
    app.command()(tail)
