"""Fixtures of the trust flow tests: a producer, the outputs, Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
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
    # The tests read state through it, they do not time Redis.  On a loaded 2-core machine
    # a new connection's handshake has gone unanswered for 30 s while the worker's
    # connections worked (cause not found: no slow command, no rejected connection), so a
    # read that times out is tried again on a fresh connection, for up to about a minute.
    client = redis.Redis.from_url(settings.redis.url.get_secret_value(), decode_responses=True,
                                  socket_timeout=8, socket_connect_timeout=8,
                                  retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 6),
                                  retry_on_timeout=True)
    yield client
    client.close()
