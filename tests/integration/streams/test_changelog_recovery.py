"""A table whose changelog ends in a multi-record batch is recovered whole.

The embedded broker answers ``ListOffsets`` with the base offset of a
partition's last record batch (+1); Faust's recovery reads up to that answer,
so without the guard in the worker transport (:mod:`dharma.streams.faust_fork.offsets`) the
records of the last batch after its first are never applied to the table.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from table_worker import changelog_of, recovered_table

pytestmark = pytest.mark.integration

RECORDS = 30


def _create(settings: Any, *topics: str) -> None:
    admin = AdminClient(settings.kafka.confluent_config())
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        future.result()


def _one_batch(settings: Any, topic: str, values: dict[str, int]) -> None:
    """Produce ``values`` as one record batch (one produce request) to partition 0."""
    producer = Producer({**settings.kafka.confluent_config(), "linger.ms": 5000})
    for key, value in values.items():
        producer.produce(topic, key=json.dumps(key).encode(), value=json.dumps(value).encode(),
                         partition=0)
    assert producer.flush(30) == 0


def _listed_end(settings: Any, topic: str) -> int:
    from confluent_kafka import Consumer

    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": uuid.uuid4().hex})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


def test_recovery_reads_the_whole_last_batch(settings: Any, stack_env: dict[str, str],
                                             tmp_path: Path, poll: Any) -> None:
    app_id = f"rec{uuid.uuid4().hex[:8]}"
    source, changelog = f"{app_id}-source", changelog_of(app_id)
    _create(settings, source, changelog)
    values = {f"key-{i}": i for i in range(RECORDS)}
    _one_batch(settings, changelog, values)
    listed = _listed_end(settings, changelog)  # 1 on Tansu 0.6: base offset of the batch + 1

    recovered = recovered_table(stack_env, app_id, source, tmp_path, poll)
    missing = sorted(set(values) - set(recovered), key=lambda k: values[k])
    assert not missing, (f"{len(missing)} of {RECORDS} keys not recovered (ListOffsets answered "
                         f"{listed}): first {missing[:5]}")
    assert recovered == values
