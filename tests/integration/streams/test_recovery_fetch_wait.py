"""Tables recover even when a changelog's lookups outlast the streams' fetch wait.

The embedded broker looks a partition up by listing every record batch it
holds and answers a fetch with nothing once the fetch's wait has run out; the
worker therefore reads changelogs with a longer wait while its tables recover.
Here the streams' wait is 2 ms and the changelog holds 10,000 one-record
batches (about 5 ms to look up).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from table_worker import changelog_of, recovered_table

pytestmark = pytest.mark.integration

BATCHES, KEYS = 10_000, 50


def test_tables_recover_past_the_streams_fetch_wait(settings: Any, stack_env: dict[str, str],
                                                     tmp_path: Path, poll: Any) -> None:
    app_id = f"wait{uuid.uuid4().hex[:8]}"
    source, changelog = f"{app_id}-source", changelog_of(app_id)
    admin = AdminClient(settings.kafka.confluent_config())
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in (source, changelog)]).values():
        future.result()
    producer = Producer({**settings.kafka.confluent_config(), "linger.ms": 0,
                         "batch.num.messages": 1})  # one record batch per record
    for i in range(BATCHES):
        producer.produce(changelog, key=json.dumps(f"key-{i % KEYS}").encode(),
                         value=json.dumps(i).encode(), partition=0)
    assert producer.flush(60) == 0
    expected = {f"key-{k}": BATCHES - KEYS + k for k in range(KEYS)}  # each key's last value

    recovered = recovered_table(stack_env, app_id, source, tmp_path, poll,
                                DHARMA_WORKER_FETCH_MAX_WAIT_MS="2")
    assert recovered == expected
