"""Fixtures of the self-healing flow tests."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Producer

from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer


@pytest.fixture
def producer(settings: Any) -> AvroProducer:
    return AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))
