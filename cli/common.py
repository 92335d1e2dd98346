"""Helpers shared by the CLI commands: settings, logging, consoles."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

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


@contextmanager
def utf8_text(path: Path) -> Iterator[TextIO]:
    """``path`` open as UTF-8 text (a byte-order mark dropped, line ends as they are, for
    csv); bytes that are not UTF-8, met while it is read: :class:`CliFailure`."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        try:
            yield stream
        except UnicodeDecodeError as exc:
            raise CliFailure(f"{path}: not UTF-8 text ({exc.reason})") from None


def read_utf8(path: Path) -> str:
    """The whole text of a UTF-8 file (see :func:`utf8_text`)."""
    with utf8_text(path) as stream:
        return stream.read()


def produce_all(settings: Settings, topic: str, records: Iterable[tuple[str, Any]],
                what: str = "record") -> int:
    """Send ``(key, value)`` pairs to ``topic`` with the registry's serializers (read as
    they are sent); how many; :class:`CliFailure` unless the broker acknowledged every
    one."""
    from confluent_kafka import KafkaError, Message

    from dharma.streams.admin import registry_client
    from dharma.streams.producer import AvroProducer, batching_producer

    failed: list[KafkaError] = []

    def delivered(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            failed.append(err)

    producer = AvroProducer(batching_producer(settings, linger_ms=50), registry_client(settings))
    sent = 0
    for key, value in records:
        producer.produce(topic, key, value, on_delivery=delivered)
        sent += 1
    if producer.flush(60) > 0 or failed:
        raise CliFailure(f"the broker did not take every {what} ({len(failed)} failed"
                         f"{f': {failed[0]}' if failed else ', or no answer within 60 s'})")
    return sent
