"""Cost accrual through Kafka into PostgreSQL: rows per asset and window, a late
``retired`` event correcting the hours (and days) it changes, bad events dead-lettered."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer

from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer

pytestmark = pytest.mark.integration

TOPIC = "infrastructure.events"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def asset(rid: str, action: str, ts: int, cost: float | None = 0.5,
          instance_type: str = "m5.large", team: str = "payments") -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "type": "asset", "resource_id": rid,
            "attributes": {"action": action, "asset_type": "app", "name": rid,
                           "provider": "aws", "region": "eu-west-1", "team": team,
                           "env": "prod", "instance_type": instance_type, "hourly_cost": cost}}


@pytest.fixture
def producer(settings: Any) -> AvroProducer:
    return AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))


def produce(producer: AvroProducer, events: list[dict[str, Any]]) -> None:
    for event in events:
        producer.produce(TOPIC, event["resource_id"], event)
    producer.flush()


def hours(dsn: str, rid: str) -> dict[int, tuple[Decimal | None, float, int]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """SELECT extract(epoch FROM "ChargePeriodStart")::bigint * 1000, "EffectiveCost",
                      x_unpriced_hours, x_revision
               FROM cost_rows WHERE "ResourceId" = %s AND x_granularity = 'hour'""",
            (rid,)).fetchall()
    return {start: (cost, unpriced, rev) for start, cost, unpriced, rev in rows}


def total(dsn: str, rid: str, granularity: str) -> Decimal:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("""SELECT coalesce(sum("EffectiveCost"), 0) FROM cost_rows
                              WHERE "ResourceId" = %s AND x_granularity = %s""",
                           (rid, granularity)).fetchone()
    assert row is not None
    return Decimal(row[0])


def test_lifecycle_accrues_prorated_and_a_late_retire_corrects(
        settings: Any, start_worker: Any, producer: AvroProducer, poll: Any) -> None:
    dsn = settings.postgres.dsn.get_secret_value()
    now = int(time.time() * 1000)
    day0 = now - now % DAY_MS - 3 * DAY_MS
    p = uuid.uuid4().hex[:6]
    short, live, unpriced = f"{p}-short", f"{p}-live", f"{p}-unpriced"
    start_worker("cost", DHARMA_COST_TICK_S="0.5")
    created = day0 + 20 * 60_000  # 00:20
    produce(producer, [
        # retired first: arrival order does not matter
        asset(short, "retired", created + 30 * HOUR_MS),
        asset(short, "created", created),
        asset(short, "updated", created + 10 * HOUR_MS, cost=1.0, instance_type="m5.xlarge"),
        asset(live, "created", day0, cost=0.25),
        asset(unpriced, "created", day0, cost=None),
    ])
    # short: 10 h at 0.5, then 20 h at 1.0
    rows = poll(lambda: (h := hours(dsn, short)) and len(h) == 31 and h, "hours of short")
    assert rows[day0][0] == Decimal("0.3333333333")  # 40 minutes at 0.5
    for granularity in ("hour", "day", "month"):
        assert abs(total(dsn, short, granularity) - 25) < Decimal("1e-8"), granularity
    # the unpriced asset is reported as unpriced, never as $0
    unpriced_rows = poll(lambda: hours(dsn, unpriced), "hours of unpriced")
    assert all(cost is None and u == 1.0 for cost, u, _ in unpriced_rows.values())

    before = poll(lambda: (h := hours(dsn, live)) and len(h) >= 3 * 24 and h, "hours of live")
    retired = day0 + DAY_MS + 30 * 60_000  # late: day 1, 00:30
    produce(producer, [asset(live, "retired", retired, cost=0.25)])

    def corrected() -> dict[int, tuple[Decimal | None, float, int]] | None:
        h = hours(dsn, live)
        return h if h[retired - retired % HOUR_MS][0] == Decimal("0.1250000000") else None

    after = poll(corrected, "the late retire's correction")
    assert after[day0 + DAY_MS + HOUR_MS][0] == 0  # after retirement: revised to zero
    assert after[day0 + DAY_MS + HOUR_MS][2] == before[day0 + DAY_MS + HOUR_MS][2] + 1
    assert after[day0][2] == before[day0][2]  # untouched hours keep their revision
    assert poll(lambda: total(dsn, live, "day") == Decimal("6.125"), "day rows revised")
    with psycopg.connect(dsn) as conn:
        logged = conn.execute("""SELECT count(*) FROM cost_corrections WHERE "ResourceId" = %s""",
                              (live,)).fetchone()
    assert logged is not None and logged[0] >= 24
