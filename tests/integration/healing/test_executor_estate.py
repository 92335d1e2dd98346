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
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from executor_support import TOPIC, Events, ms

from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.synthetic import SyntheticSource
from dharma.synthetic.executor import remediation_request

pytestmark = pytest.mark.integration



def test_the_generator_heals_an_injected_incident_on_the_right_action(
        settings: Any, stack_env: dict[str, str], tmp_path: Path, poll: Any) -> None:
    events = Events(settings)
    statuses = events.statuses

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
        poll(lambda: any(v["event_id"] == first for v in events.read()),
             "the generator producing (its request "
             "consumer assigned first)", timeout=120,
             describe=lambda: f"exit {proc.poll()}: {log.read_text(errors='replace')[-2000:]}")
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
        reports = {(v["attributes"]["remediation_id"], v["attributes"]["status"]): v
                   for rid in (wrong, right) for v in events.reports(rid)}
    finally:
        proc.send_signal(signal.SIGINT)
        try:  # it flushes (30 s at most), then writes its labels
            proc.wait(180)
        finally:  # never left running: it would answer the next tests' requests
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            events.close()
    assert reports[right, "started"]["event_id"] != reports[right, "succeeded"]["event_id"]
    assert "healed" not in reports[wrong, "succeeded"]["attributes"]["reason"]
    healed = reports[right, "succeeded"]
    assert "memory_leak" in healed["attributes"]["reason"]
    assert ms(healed["ts"]) - ms(reports[right, "started"]["ts"]) == 30_000, \
        "its estimated downtime, 3 ticks"
    (label,) = [x for x in json.loads((tmp_path / "labels.json").read_text())
                if x["source"] == "web-server-01" and x["category"] == "memory_leak"]
    assert label["end_ms"] == ms(healed["ts"]), "the incident ends when its remediation succeeds"

