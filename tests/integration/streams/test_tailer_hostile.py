"""A reader of our topics (``dharma tail``, ``dharma up``'s live view) passes over a
record that does not decode instead of stopping."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Producer

from dharma.streams.admin import registry_client
from dharma.streams.alerting import alert_record
from dharma.streams.producer import AvroProducer
from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration


def test_an_undecodable_record_is_passed_over_and_counted(settings: Any, poll: Any) -> None:
    topic, tag = "alerts.notifications", uuid.uuid4().hex
    raw = Producer(settings.kafka.confluent_config())
    good = alert_record(kind="anomaly", component="anomaly", source=f"web-{tag}",
                        subject="cpu", status="firing", severity="warning", summary="s",
                        ts=1, episode_start=1)
    with Tailer(settings, [topic], from_beginning=True) as tail:
        raw.produce(topic, key=good["fingerprint"].encode(), value=b"\x00\x00\x00\xff\xffnot avro")
        raw.flush()
        AvroProducer(raw, registry_client(settings)).produce(topic, good["fingerprint"], good)
        raw.flush()
        seen: list[dict[str, Any]] = []

        def read() -> list[dict[str, Any]]:
            seen.extend(v for _t, v in tail.poll(0.2) if v.get("source") == f"web-{tag}")
            return seen

        poll(read, "the good record read past the bad one")
        assert tail.undecodable >= 1
