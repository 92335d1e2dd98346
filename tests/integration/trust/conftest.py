"""Fixtures of the trust flow tests: a producer, the outputs, Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from trust_helpers import Outputs

from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer


@pytest.fixture
def producer(settings: Any) -> AvroProducer:
    return AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))


@pytest.fixture
def outputs(settings: Any) -> Iterator[Outputs]:
    out = Outputs(settings)
    yield out
    out.close()


@pytest.fixture
def redis_client(settings: Any) -> Iterator[redis.Redis]:
    # The tests read state through it, they do not time Redis: on a loaded 2-core CI
    # machine the session's server once took over redis-py's 5 s default to answer a
    # handshake, so reads wait as long as a test's own deadline would.
    client = redis.Redis.from_url(settings.redis.url.get_secret_value(), decode_responses=True,
                                  socket_timeout=30, socket_connect_timeout=30)
    yield client
    client.close()
