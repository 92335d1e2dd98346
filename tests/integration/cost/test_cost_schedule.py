"""The cost worker's schedule through Kafka: assets with three weeks of history become
a forecast per team and in total on ``ml.predictions`` (30 days, mean within its 95 %
interval, the seed's summary fields), and a team's budget its alerts on
``alerts.notifications``: 80 % of the budget crossed and the month-end forecast over
it, each once however many runs follow."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from dharma.cli import app
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.records import month_start
from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


def asset(rid: str, team: str, ts: int, cost: float) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "type": "asset", "resource_id": rid,
            "attributes": {"action": "created", "asset_type": "app", "name": rid,
                           "provider": "aws", "region": "eu-west-1", "team": team,
                           "env": "prod", "instance_type": "m5.large", "hourly_cost": cost}}


def month_to_date(dsn: str, team: str, now: int) -> float:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("""SELECT coalesce(sum("EffectiveCost"), 0)::float8 FROM cost_rows
                              WHERE x_granularity = 'hour' AND x_team = %s
                              AND "ChargePeriodStart" >= to_timestamp(%s / 1000.0)""",
                           (team, month_start(now))).fetchone()
    return float(row[0]) if row else 0.0


def test_forecasts_and_budget_alerts_on_the_schedule(
        settings: Any, start_worker: Any, poll: Any) -> None:
    dsn = settings.postgres.dsn.get_secret_value()
    tag = uuid.uuid4().hex[:6]
    team = f"team-{tag}"
    now = int(time.time() * 1000)
    producer = AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))
    worker = start_worker("cost", DHARMA_COST_TICK_S="0.5", DHARMA_COST_SCHEDULE_S="2")
    for i, cost in enumerate((4.0, 6.0)):
        rid = f"{tag}-app-{i}"
        producer.produce("infrastructure.events", rid,
                         asset(rid, team, now - 21 * DAY_MS - i * 3_600_000, cost))
    producer.flush()
    # this month's closed hours accrued ($10 an hour), then the budget: 80 % crossed
    hours = (now - now % 3_600_000 - month_start(now)) // 3_600_000
    spent = poll(lambda: (s := month_to_date(dsn, team, now)) >= 10 * hours and s,
                 "this month accrued", timeout=90)
    # in a month's first hour nothing is spent yet: only the forecast can be over budget
    monthly = round(spent / 0.9, 2) if hours else 100.0
    result = CliRunner().invoke(app, ["cost", "budget", "set", "--team", team, "--monthly",
                                      str(monthly)])
    assert result.exit_code == 0, result.output
    with Tailer(settings, ["ml.predictions", "alerts.notifications"],
                from_beginning=True) as tail:
        seen: list[dict[str, Any]] = []

        def read() -> list[dict[str, Any]]:
            seen.extend(r for _, r in tail.poll(0.5)
                        if r.get("scope_value") == team or r.get("labels", {}).get("team") == team)
            return seen

        def forecast() -> dict[str, Any] | None:
            found = [r for r in read() if r.get("kind") == "cost_forecast"]
            return found[-1] if found else None

        record = poll(forecast, "the team's forecast", timeout=120)
        expected = {"budget", "budget_forecast"} if hours else {"budget_forecast"}
        poll(lambda: {r["kind"] for r in read() if r.get("status") == "firing"} >= expected,
             "the budget alerts", timeout=60)
        runs = worker.output().count("cost schedule:")
        poll(lambda: worker.output().count("cost schedule:") >= runs + 2,
             "two more runs of the schedule")  # which fire nothing again
        read()
    assert record["scope"] == "team" and len(record["daily"]) == 30
    assert all(d["lower"] <= d["mean"] <= d["upper"] for d in record["daily"])
    assert record["daily"][0]["day"].timestamp() * 1000 == now - now % DAY_MS
    assert record["monthly_total"] == pytest.approx(sum(d["mean"] for d in record["daily"]))
    assert record["trend"] in ("increasing", "decreasing", "stable")
    assert record["monthly_total"] == pytest.approx(30 * 240, rel=0.1)  # $10 an hour
    firing = [r for r in seen if r.get("status") == "firing"]
    # once each: an hour that closes meanwhile may cross 100 % too, never fire one twice
    fingerprints = [r["fingerprint"] for r in firing]
    assert len(fingerprints) == len(set(fingerprints)), firing
    assert {r["kind"] for r in firing} == expected
    assert not hours or "0.8" in {r["labels"].get("threshold") for r in firing
                                  if r["kind"] == "budget"}
