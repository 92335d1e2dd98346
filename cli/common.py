"""Helpers shared by the CLI commands: settings, logging, consoles."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

from dharma.streams.errors import DharmaError
from dharma.streams.settings import Settings

console = Console()
err_console = Console(stderr=True)


def load_settings() -> Settings:
    """Settings from the environment (read once, at the entry point)."""
    return Settings()


def setup_logging(level: str = "WARNING") -> None:
    """Log key=value lines to stderr through rich."""
    logging.basicConfig(
        level=level.upper(), format="%(name)s %(message)s", datefmt="%H:%M:%S",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=True)],
        force=True,
    )


class CliFailure(DharmaError):
    """A command could not do its work (shown as one line on stderr, exit code 1)."""


def read_utf8(path: Path) -> str:
    """The text of a UTF-8 file (a byte-order mark dropped); :class:`CliFailure` if it is
    not UTF-8."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliFailure(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") \
            from None


def produce_all(settings: Settings, topic: str, records: Iterable[tuple[str, Any]],
                what: str = "record") -> None:
    """Send ``(key, value)`` pairs to ``topic`` with the registry's serializers;
    :class:`CliFailure` unless the broker acknowledged every one."""
    from confluent_kafka import KafkaError, Message

    from dharma.streams.admin import registry_client
    from dharma.streams.producer import AvroProducer, batching_producer

    failed: list[KafkaError] = []

    def delivered(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            failed.append(err)

    producer = AvroProducer(batching_producer(settings, linger_ms=50), registry_client(settings))
    for key, value in records:
        producer.produce(topic, key, value, on_delivery=delivered)
    if producer.flush(60) > 0 or failed:
        raise CliFailure(f"the broker did not take every {what} ({len(failed)} failed"
                         f"{f': {failed[0]}' if failed else ', or no answer within 60 s'})")
