"""Fixtures of the anomaly flow tests: a producer and workers sharing one app id."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from anomaly_helpers import TopicReader
from confluent_kafka import Producer

from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer


@pytest.fixture
def producer(settings: Any) -> AvroProducer:
    return AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))


@pytest.fixture
def app_id() -> str:
    """One consumer-group prefix for every worker of a test."""
    return f"a{uuid.uuid4().hex[:8]}"


@pytest.fixture
def workers(start_worker: Callable[..., Any], app_id: str) -> Callable[..., Any]:
    """Factory: start a worker of ``topology`` with the test's app id.

    Unlike plain ``start_worker`` calls, every call shares ``app_id``, so a second
    call after a kill is a restart of the same consumer group (and the same
    changelog topics).  ``start_worker`` stops them all after the test.
    """

    def start(topology: str = "anomaly", **extra_env: str) -> Any:
        return start_worker(topology, DHARMA_WORKER_APP_ID=app_id, **extra_env)

    return start


@pytest.fixture
def reader(settings: Any) -> Iterator[Callable[..., TopicReader]]:
    """Factory: a :class:`TopicReader` of a topic from its beginning; closed afterwards."""
    opened: list[TopicReader] = []

    def open_reader(topic: str, keep: Callable[[dict[str, Any]], bool],
                    key_has: bytes | None = None) -> TopicReader:
        opened.append(TopicReader(settings, topic, keep, key_has))
        return opened[-1]

    yield open_reader
    for r in opened:
        r.close()
