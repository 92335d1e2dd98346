"""PostgreSQL away while a late ``retired`` event and usage samples arrive: the cost
worker holds the batches (partitions paused) and, once the store is back, applies the
correction and stores the usage; nothing is dead-lettered, nothing is lost."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from trust_servers import own_postgres

from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
OUTAGE_S = 8.0


def asset(rid: str, action: str, ts: int) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "type": "asset", "resource_id": rid,
            "attributes": {"action": action, "asset_type": "app", "name": rid,
                           "provider": "aws", "region": "eu-west-1", "team": "payments",
                           "env": "prod", "instance_type": "m5.large", "hourly_cost": 1.0}}


def test_postgres_away_holds_the_correction_and_the_usage_and_loses_nothing(
        settings: Any, start_worker: Any, poll: Any, pick_port: Any) -> None:
    rid = f"o{uuid.uuid4().hex[:6]}-app"
    now = int(time.time() * 1000)
    hour = now - now % HOUR_MS
    producer = AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))
    with own_postgres(pick_port()) as pg:
        def accrued() -> float:
            with psycopg.connect(pg.url) as conn:
                row = conn.execute("""SELECT coalesce(sum("EffectiveCost"), 0)::float8
                                      FROM cost_rows WHERE "ResourceId" = %s
                                      AND x_granularity = 'hour'""", (rid,)).fetchone()
                return float(row[0]) if row else 0.0

        def usage() -> int:
            with psycopg.connect(pg.url) as conn:
                row = conn.execute("SELECT count(*) FROM cost_usage WHERE resource_id = %s",
                                   (rid,)).fetchone()
                return int(row[0]) if row else 0

        start_worker("cost", DHARMA_POSTGRES_DSN=pg.url, DHARMA_COST_TICK_S="0.5",
                     DHARMA_WORKER_SINK_MAX_BACKOFF_S="1")
        producer.produce("infrastructure.events", rid, asset(rid, "created", hour - 6 * HOUR_MS))
        producer.flush()
        poll(lambda: accrued() == pytest.approx(6.0), "six hours accrued", timeout=90)
        letters: list[dict[str, Any]] = []
        with Tailer(settings, ["infrastructure.events.dlq", "metrics.raw.dlq"],
                    from_beginning=True) as dlq:
            pg.stop()
            producer.produce("infrastructure.events", rid,
                             asset(rid, "retired", hour - 4 * HOUR_MS))
            for h in range(3):
                producer.produce("metrics.raw", rid, {
                    "source": rid, "metric": "cpu_utilization", "value": 10.0 + h,
                    "ts": hour - h * HOUR_MS - 60_000, "labels": {}, "unit": "percent"})
            producer.flush()
            threading.Event().wait(OUTAGE_S)  # the outage itself
            pg.start()
            poll(lambda: accrued() == pytest.approx(2.0), "the correction applied", timeout=120)
            poll(lambda: usage() == 3, "the usage stored", timeout=60)
            letters.extend(v for _, v in dlq.poll(1.0)
                           if rid.encode() in (v["original_key"] or b""))
        assert letters == []
