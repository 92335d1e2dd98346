"""``dharma dlq redrive``: re-produce dead letters to the topic they came from.

    dharma dlq redrive metrics.raw --kind sink_error --since 2h
    dharma dlq redrive audit.logs.dlq --since 2026-12-01T18:00:00+00:00

Each letter's original key and value go back, byte for byte, to the partition
they were read from (so keyed state stays co-partitioned); dead letters keep no
headers, so none are re-produced.  Safe to run twice: each redriven original is
marked (``<dlq>.redriven``, compacted, key: the original's ``partition:offset``)
once the broker has acknowledged its re-production, and letters of a marked
original are skipped, so an original dead-lettered twice (by two topologies
consuming its topic, or again after a worker restarted before committing) goes
back once.  A
crash between the two re-produces a letter again on the next run, which the
sinks store once (writes are idempotent by event id).  A letter whose original
bytes were truncated (over 256 KiB) is never redriven: it is reported instead.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, get_args

import typer
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dharma.cli.alerts import parse_duration
from dharma.cli.common import console, err_console, load_settings
from dharma.schemas import DLQ_SUFFIX
from dharma.streams.admin import registry_client
from dharma.streams.errors import ErrorKind
from dharma.streams.settings import Settings

__all__ = ["disposition", "parse_since", "read_letters", "redrive", "register"]

dlq_app = typer.Typer(help="Inspect and redrive dead letters.", no_args_is_help=True)

TRUNCATED = "original value truncated", "original key truncated"


def parse_since(text: str, now_ms: int) -> int:
    """Epoch milliseconds of ``--since``: an ISO 8601 time, or a duration back from now.

    >>> parse_since("2h", now_ms=10_000_000)
    2800000
    >>> parse_since("2026-12-01T18:00:00+00:00", now_ms=0)
    1796148000000
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return now_ms - int(parse_duration(text) * 1000)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _read_to_end(settings: Settings, topic: str, idle_limit_s: float = 30.0
                 ) -> Iterator[Message]:
    """Every message of ``topic`` written before now (read with ``assign``: no group).

    A partition is read up to its first message written since (new dead letters, the
    redriven poison among them, wait for the next run), or, when none came, up to
    where a poll finds nothing more once its position has passed its listed end (an
    embedded broker lists the start of a partition's last record batch: what
    follows it is read all the same).
    """
    now_ms = int(time.time() * 1000)
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": "dharma-dlq-redrive",
                         "enable.auto.commit": False, "log_level": 3})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts]
        marks = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10) for tp in tps}
        # an empty partition is at its end already
        ends = {p: high if high > low else -1 for p, (low, high) in marks.items()}
        consumer.assign(tps)
        done: set[int] = set()
        idle_since = time.monotonic()
        while len(done) < len(tps):
            batch = [msg for msg in consumer.consume(500, 1.0) if not msg.error()]
            for msg in batch:
                partition = msg.partition() or 0
                if msg.timestamp()[1] >= now_ms:
                    done.add(partition)
                elif partition not in done:
                    yield msg
            if batch:
                idle_since = time.monotonic()
                continue
            done.update(tp.partition for tp in consumer.position(tps)
                        if ends[tp.partition] < 0 or tp.offset >= ends[tp.partition])
            if len(done) < len(tps) and time.monotonic() - idle_since > idle_limit_s:
                raise TimeoutError(f"{topic}: its end not reached in {idle_limit_s:.0f}s")
    finally:
        consumer.close()


def read_letters(settings: Settings, dlq: str) -> Iterator[tuple[Message, dict[str, Any]]]:
    """Every dead letter of ``dlq`` up to its end now, decoded."""
    decode = AvroDeserializer(registry_client(settings))
    context = SerializationContext(dlq, MessageField.VALUE)
    for msg in _read_to_end(settings, dlq):
        yield msg, decode(msg.value(), context)


def disposition(letter: dict[str, Any], source: str, done: set[bytes], kind: str | None,
                since_ms: int | None) -> str:
    """What redriving does with ``letter`` of ``source``'s dead-letter topic: ``redrive``,
    or why not: ``foreign`` (it names another topic: a dead-letter topic is no way into
    any other topic, a changelog's least of all), ``already`` (its original went back
    before), ``filtered`` (``kind`` / ``since_ms``) or ``truncated``.

    >>> letter = {"topic": "metrics.raw", "partition": 3, "offset": 7, "reason": "bad",
    ...           "error_kind": "sink_error", "ts": 1_000}
    >>> disposition(letter, "metrics.raw", set(), None, None)
    'redrive'
    >>> disposition({**letter, "topic": "x-anomaly-detectors-changelog"}, "metrics.raw",
    ...             set(), None, None)
    'foreign'
    >>> disposition(letter, "metrics.raw", {b"3:7"}, None, None)
    'already'
    >>> disposition(letter, "metrics.raw", set(), "undecodable", None)
    'filtered'
    """
    if letter["topic"] != source:
        return "foreign"
    if _marker(letter["partition"], letter["offset"]) in done:
        return "already"
    if (kind and letter["error_kind"] != kind) or (
            since_ms is not None and _millis(letter["ts"]) < since_ms):
        return "filtered"
    if any(note in letter["reason"] for note in TRUNCATED):
        return "truncated"
    return "redrive"


def _marker(partition: int, offset: int) -> bytes:
    return f"{partition}:{offset}".encode()


def _millis(ts: Any) -> int:
    return int(ts.timestamp() * 1000) if isinstance(ts, datetime) else int(ts)


def redrive(settings: Settings, topic: str, kind: str | None = None,
            since_ms: int | None = None) -> Counter[str]:
    """Re-produce the dead letters of ``topic`` (or of its ``.dlq`` twin) that match
    ``kind`` and ``since_ms``; counts by outcome (``redriven``, and :func:`disposition`'s
    reasons not to: ``foreign``, ``already``, ``filtered``, ``truncated``)."""
    from dharma.streams.admin import create_topics
    from dharma.streams.topics import by_name

    dlq = by_name(topic if topic.endswith(DLQ_SUFFIX) else f"{topic}{DLQ_SUFFIX}")
    markers = dlq.redriven
    create_topics(settings, (markers,))
    done = {key for msg in _read_to_end(settings, markers.name) if (key := msg.key())}
    # in order, as the emitter sends (no idempotent producer: a retried duplicate is
    # stored once by the sinks)
    producer = Producer({**settings.kafka.confluent_config(), "acks": "all",
                         "enable.idempotence": False,
                         "max.in.flight.requests.per.connection": 1})
    counts: Counter[str] = Counter()
    sent: list[bytes] = []
    failed: list[KafkaError] = []

    def delivered(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            failed.append(err)

    source = dlq.name.removesuffix(DLQ_SUFFIX)
    for _, letter in read_letters(settings, dlq.name):
        key = _marker(letter["partition"], letter["offset"])
        outcome = disposition(letter, source, done, kind, since_ms)
        counts[outcome] += 1
        if outcome == "redrive":
            producer.produce(source, key=letter["original_key"],
                             value=letter["original_value"], partition=letter["partition"],
                             on_delivery=delivered)
            sent.append(key)
            done.add(key)
    del counts["redrive"]
    _flush(producer, failed)
    for key in sent:  # only once every re-production was acknowledged
        producer.produce(markers.name, key=key, value=str(int(time.time() * 1000)).encode(),
                         on_delivery=delivered)
    _flush(producer, failed)
    counts["redriven"] = len(sent)
    return counts


def _flush(producer: Producer, failed: list[KafkaError]) -> None:
    if producer.flush(60) > 0:
        raise RuntimeError("the broker did not acknowledge every message within 60 s")
    if failed:
        raise RuntimeError(f"not delivered: {failed[0]}")


@dlq_app.command("redrive")
def redrive_command(
    topic: str = typer.Argument(..., help="The topic (or its .dlq twin), e.g. metrics.raw."),
    kind: str | None = typer.Option(None, help="Only letters of this error kind, e.g. "
                                    "sink_error, undecodable, contract_violation."),
    since: str | None = typer.Option(None, help="Only letters dead-lettered since then: ISO "
                                     "8601 time, or a duration back from now (2h, 30m)."),
) -> None:
    """Re-produce dead letters to their original topic and partition, original bytes; letters
    redriven before are skipped, so running it twice re-produces nothing twice."""
    if kind is not None and kind not in get_args(ErrorKind):
        raise typer.BadParameter(f"{kind!r}: one of {', '.join(get_args(ErrorKind))}")
    since_ms = parse_since(since, int(time.time() * 1000)) if since else None
    counts = redrive(load_settings(), topic, kind, since_ms)
    if counts["truncated"]:
        err_console.print(f"[yellow]{counts['truncated']} letters kept truncated bytes and "
                          "were not redriven[/]")
    if counts["foreign"]:
        err_console.print(f"[red]{counts['foreign']} letters name another topic than this "
                          "dead-letter topic's: forged or misplaced, not redriven[/]")
    console.print(f"redriven={counts['redriven']} already={counts['already']} "
                  f"filtered={counts['filtered']} truncated={counts['truncated']} "
                  f"foreign={counts['foreign']}")


def register(app: typer.Typer) -> None:
    """Add the ``dlq`` command group."""
    app.add_typer(dlq_app, name="dlq")
