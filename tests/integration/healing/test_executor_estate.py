"""``dharma generate --executor`` answers remediation requests produced to Kafka: an
injected memory leak ends when (and only when) restart_service arrives for its resource."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.tailer import Tailer
from dharma.synthetic import SyntheticSource
from dharma.synthetic.executor import remediation_request

pytestmark = pytest.mark.integration

TOPIC = "infrastructure.events"


def test_the_generator_heals_an_injected_incident_on_the_right_action(
        settings: Any, stack_env: dict[str, str], tmp_path: Path, poll: Any) -> None:
    tail = Tailer(settings, [TOPIC], from_beginning=True)
    seen: list[dict[str, Any]] = []

    def statuses(rid: str) -> list[str]:
        seen.extend(v for _, v in tail.poll(0.2) if v["type"] == "remediation")
        return [v["attributes"]["status"] for v in seen
                if v["attributes"]["remediation_id"] == rid
                and v["attributes"]["status"] != "requested"]

    seed = random.randrange(1 << 30)
    first = next(SyntheticSource(seed, 0).ticks())[0].value["event_id"]  # this run's own
    log = tmp_path / "generate.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dharma.cli", "generate", "--executor", "--quiet",
             "--rate", "200", "--duration", "300", "--seed", str(seed), "--labels-dir",
             str(tmp_path), "--inject", "memory_leak:web-server-01@0s"],
            env={**os.environ, **stack_env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    producer = AvroProducer(Producer(settings.kafka.confluent_config()),
                            registry_client(settings))
    try:
        poll(lambda: _producing(tail, seen, first), "the generator producing (its request "
             "consumer assigned first)", timeout=120,
             describe=lambda: log.read_text(errors="replace")[-2000:])
        run = uuid.uuid4().hex[:8]
        wrong, dry, right = f"wrong-{run}", f"dry-{run}", f"right-{run}"
        now = int(time.time() * 1000)
        for request in (remediation_request("web-server-01", wrong, "scale_out", ts=now),
                        remediation_request("web-server-01", dry, "restart_service", ts=now,
                                            dry_run=True)):
            producer.produce(TOPIC, "web-server-01", {**request, "event_id": uuid.uuid4().hex})
        producer.flush()
        poll(lambda: statuses(wrong) == ["started", "succeeded"], "the wrong action ran",
             describe=lambda: log.read_text(errors="replace")[-2000:])
        producer.produce(TOPIC, "web-server-01", {**remediation_request(
            "web-server-01", right, "restart_service", ts=now, estimated_downtime_s=30),
            "event_id": uuid.uuid4().hex})
        producer.flush()
        poll(lambda: statuses(right) == ["started", "succeeded"], "the right action ran",
             describe=lambda: log.read_text(errors="replace")[-2000:])
        assert statuses(dry) == [], "a dry-run request is never executed"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        tail.close()
    reports = {(v["attributes"]["remediation_id"], v["attributes"]["status"]): v for v in seen}
    assert reports[right, "started"]["event_id"] != reports[right, "succeeded"]["event_id"]
    assert "healed" not in reports[wrong, "succeeded"]["attributes"]["reason"]
    healed = reports[right, "succeeded"]
    assert "memory_leak" in healed["attributes"]["reason"]
    assert _ms(healed["ts"]) - _ms(reports[right, "started"]["ts"]) == 30_000, \
        "its estimated downtime, 3 ticks"
    (label,) = [x for x in json.loads((tmp_path / "labels.json").read_text())
                if x["source"] == "web-server-01" and x["category"] == "memory_leak"]
    assert label["end_ms"] == _ms(healed["ts"]), "the incident ends when its remediation succeeds"


def _producing(tail: Tailer, seen: list[dict[str, Any]], first: str) -> bool:
    """Whether the generator's first event reached the topic."""
    values = [v for _, v in tail.poll(0.5)]
    seen.extend(v for v in values if v["type"] == "remediation")
    return any(v["event_id"] == first for v in values)


def _ms(ts: datetime) -> int:
    """Epoch milliseconds of a decoded timestamp (the Avro deserializer gives datetimes)."""
    return round(ts.timestamp() * 1000)
