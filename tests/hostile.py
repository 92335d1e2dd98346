"""Hostile changelog records shared by the unit and integration tests: pickles that
run a command when loaded, keys and values Faust could not decode, and the means to
put them on a table (Faust's own recovery path, or the real changelog topic)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import pickle
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faust.types.tuples import Message


class Exec:
    """Pickles to a call of ``os.system`` creating ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def exec_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when loaded."""
    return pickle.dumps(Exec(marker))


def via_state_module(inner: bytes) -> bytes:
    """A pickle calling ``pickle.loads(inner)``, with ``pickle.loads`` fetched as a name
    under ``dharma.agents.anomaly.state`` (what the restricted unpickler of pickled
    checkpoints let through: any name under a module prefix, dotted names walked)."""
    def name(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()

    return (b"\x80\x04" + name("dharma.agents.anomaly.state") + name("pickle.loads") + b"\x93"
            + b"B" + struct.pack("<I", len(inner)) + inner + b"\x85R.")


# --- records whoever can write a table's changelog topic could put there -------------------

#: Keys of no key of ours that Faust's own JSON decoding of a ``str`` key could not read:
#: invalid UTF-8 (KeyDecodeError), a JSON object and a JSON list (unhashable).
UNDECODABLE_KEYS = (b"\xff\xfe", b'{"a": 1}', b"[1, [2]]")


def hostile_json_values(fields: dict[str, Any]) -> dict[str, bytes]:
    """Values no JSON table record of ours may be taken for, by kind, around the valid
    record ``fields``: not JSON, a pickle, a JSON list, a NaN, a wrong type, an unknown
    field, an oversized record."""
    name = next(iter(fields))
    return {
        "not_json": b"\x00junk",
        "pickle": pickle.dumps(fields),
        "list": json.dumps([fields]).encode(),
        "nan": json.dumps({**fields, name: math.nan}).encode(),  # NaN: Python's JSON extension
        "wrong_type": json.dumps({**fields, name: str(fields[name])}).encode(),
        "unknown_field": json.dumps({**fields, "exec": "os.system"}).encode(),
        "oversized": json.dumps({**fields, "pad": "x" * 70_000}).encode(),
    }


async def _recover(table: Any, records: Sequence[tuple[bytes, bytes | None]],
                   partition: int) -> None:
    for offset, (key, value) in enumerate(records):
        message = Message(table.changelog_topic_name, partition, offset, 0.0, 0, None, key,
                          value, None)
        event = await table.changelog_topic.decode(message, propagate=True)
        table.apply_changelog_batch([event])


def recover(table: Any, records: Sequence[tuple[bytes, bytes | None]], partition: int = 0) -> None:
    """Apply ``records`` to ``table`` as Faust's recovery does: its changelog topic decodes
    each (raising what Faust would), then ``apply_changelog_batch``."""
    asyncio.run(_recover(table, records, partition))


def write_changelog(settings: Any, topic: str, partitions: int,
                    records: Sequence[tuple[int, bytes, bytes | None]]) -> None:
    """Create the compacted ``topic`` and write ``(partition, key, value)`` records, one
    produce request each, then a last filler record per partition: the embedded broker
    reports a partition's end short of its last record batch, so what matters must not be
    in it (see test_anomaly_recovery)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    conf = settings.kafka.confluent_config()
    admin = AdminClient(conf)  # kept alive until the topic is created
    new = NewTopic(topic, partitions, 1, config={"cleanup.policy": "compact"})
    for future in admin.create_topics([new], request_timeout=10).values():
        future.result()
    producer = Producer(conf)
    fillers = [(p, b'"filler"', b"filler") for p in range(partitions)]
    for partition, key, value in [*records, *fillers]:
        producer.produce(topic, key=key, value=value, partition=partition)
        producer.flush(10)


def worker_metrics(worker: Any, poll: Any) -> str:
    """The ``/metrics`` text of a worker started by the ``start_worker`` fixture."""
    import re

    import httpx

    port = int(poll(lambda: re.search(r"127\.0\.0\.1:(\d+)/metrics", worker.output()),
                    "metrics URL printed").group(1))
    return httpx.get(f"http://127.0.0.1:{port}/metrics").text


def rejected_count(metrics_text: str, table: str, reason: str | None = None) -> float:
    """``dharma_checkpoints_rejected_total{table,reason}`` in a worker's ``/metrics`` text
    (every reason's when ``reason`` is None)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "dharma_checkpoints_rejected_total" and \
                    labels.get("table") == table and reason in (None, labels.get("reason")):
                total += float(sample.value)
    return total
