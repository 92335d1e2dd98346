"""A table whose changelog ends in a multi-record batch is recovered whole.

The embedded broker answers ``ListOffsets`` with the base offset of a
partition's last record batch (+1); Faust's recovery reads up to that answer,
so without the guard in the worker transport (:mod:`dharma.streams.offsets`) the
records of the last batch after its first are never applied to the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.integration

RECORDS = 30
WORKER = Path(__file__).with_name("table_worker.py")


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
    source, changelog = f"{app_id}-source", f"{app_id}-recovery-values-changelog"
    _create(settings, source, changelog)
    values = {f"key-{i}": i for i in range(RECORDS)}
    _one_batch(settings, changelog, values)
    listed = _listed_end(settings, changelog)  # 1 on Tansu 0.6: base offset of the batch + 1

    out, log = tmp_path / "table.json", tmp_path / "worker.log"
    env = {**os.environ, **stack_env, "DHARMA_WORKER_APP_ID": app_id}
    with log.open("wb") as sink:
        worker = subprocess.Popen([sys.executable, str(WORKER), source, str(out)], env=env,
                                  stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        poll(out.exists, "the worker to recover its table", timeout=90,
             describe=lambda: log.read_text(errors="replace")[-3000:])
        recovered = json.loads(out.read_text())
    finally:
        worker.terminate()
        worker.wait(30)
    missing = sorted(set(values) - set(recovered), key=lambda k: values[k])
    assert not missing, (f"{len(missing)} of {RECORDS} keys not recovered (ListOffsets answered "
                         f"{listed}): first {missing[:5]}")
    assert recovered == values
