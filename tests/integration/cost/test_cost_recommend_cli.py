"""``dharma cost recommend`` against the session's PostgreSQL: cost rows and hourly
utilisation written through :class:`CostStore`, recommendations read back as JSON;
and the whole way from asset events and utilisation samples on Kafka through the cost
worker.

Each test's rows belong to a team of its own (the stored ones in 2031), so that other
tests' rows in the same database never enter its windows.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner, Result

from dharma.cli import app
from dharma.sinks.costs import CostRow, UsageRow, connect_store
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer

pytestmark = pytest.mark.integration

runner = CliRunner()
HOUR = 3_600_000
DAY = 24 * HOUR
AT = 1_930_867_200_000  # Monday 2031-03-10 00:00 UTC
APP, WEB = ("m5.4xlarge", 0.768), ("t3.medium", 0.0416)


def cli(*args: str, **env: str) -> Result:
    return runner.invoke(app, ["cost", "recommend", *args], env=env or None)


def row(rid: str, team: str, env: str, itype: str, rate: float, start: int,
        granularity: str) -> CostRow:
    length = HOUR if granularity == "hour" else DAY
    cost = Decimal(str(rate)) * length / HOUR
    return CostRow(rid, rid, "app", start, start + length, granularity, cost, "USD", "shop",
                   "us-east-1", "aws", team, env, itype, rate, 0.0)


def business(hour_ms: int) -> bool:
    return (hour_ms // DAY + 3) % 7 < 5 and 8 <= hour_ms // HOUR % 24 < 19


async def _write(dsn: str, rows: list[CostRow], usage: list[UsageRow]) -> None:
    store = await connect_store(dsn)
    try:
        await store.write(rows)
        await store.record_usage(usage)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def estate(settings: Any) -> str:
    """A team with an oversized prod app and an idle dev web server, 30 steady days."""
    team = f"rec-{uuid.uuid4().hex[:8]}"
    app_id, web_id = f"{team}-app", f"{team}-web"
    days = [AT - (i + 1) * DAY for i in range(30)]
    rows = [row(app_id, team, "prod", *APP, d, "day") for d in days]
    rows += [row(web_id, team, "dev", *WEB, d, "day") for d in days]
    rows += [row(app_id, team, "prod", *APP, AT - HOUR, "hour"),
             row(web_id, team, "dev", *WEB, AT - HOUR, "hour")]
    hours = [AT - (i + 1) * HOUR for i in range(14 * 24)]
    usage = [UsageRow(app_id, m, h, 10.0) for h in hours[:48]
             for m in ("cpu_utilization", "memory_utilization")]
    usage += [UsageRow(web_id, "cpu_utilization", h, 60.0 if business(h) else 3.0)
              for h in hours]
    asyncio.run(_write(settings.postgres.dsn.get_secret_value(), rows, usage))
    return team


def test_recommend_json_gives_each_rule_its_evidence_and_the_sum(estate: str) -> None:
    result = cli("--json", "--team", estate, "--at", str(AT))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    by_type = {r["type"]: r for r in out["recommendations"]}
    assert set(by_type) == {"right_size", "schedule_shutdown", "commitment"}
    resize, shutdown, commit = (by_type[t] for t in ("right_size", "schedule_shutdown",
                                                     "commitment"))
    assert (resize["subject"], resize["current"], resize["proposed"]) == \
        (f"{estate}-app", "m5.4xlarge", "m5.large")
    assert resize["monthly_savings"] == 490.56 and resize["evidence"]["cpu_hours"] == "48"
    assert shutdown["subject"] == f"{estate}-web"
    assert shutdown["monthly_savings"] == round(0.0416 * 113 * 52 / 12, 2)
    # the team's lowest day less what the two above save, committed at 28 % off
    covered = (490.56 + shutdown["monthly_savings"]) / 730
    hourly = math.floor(((0.768 + 0.0416) - covered) * 1000) / 1000
    assert commit["subject"] == f"team:{estate}" and commit["team"] == estate
    assert commit["monthly_savings"] == round(hourly * 730 * 0.28, 2)
    assert out["potential_savings"] == round(sum(r["monthly_savings"]
                                                 for r in out["recommendations"]), 2)
    assert all(r["kind"] == "cost_recommendation" and r["ts"] == AT
               for r in out["recommendations"])


def test_recommend_prints_a_table_and_the_potential_savings(estate: str) -> None:
    result = cli("--team", estate, "--at", "2031-03-10T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert "m5.large" in result.stdout and "potential savings:" in result.stdout


def test_a_team_with_nothing_to_save_says_so(estate: str) -> None:
    result = cli("--team", f"{estate}-nobody", "--at", str(AT))
    assert result.exit_code == 0, result.output
    assert "no recommendations" in result.stdout
    assert "potential savings: 0.00 USD/month" in result.stdout


def test_a_bad_catalogue_is_an_error_not_a_traceback(estate: str, tmp_path: Path) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("provider,family,size,cores,memory_gib,hourly_price\n")
    result = cli("--json", "--at", str(AT), DHARMA_COST_CATALOGUE=str(bad))
    assert result.exit_code == 1
    assert "catalogue line 1: unknown column 'cores'" in result.stderr
    assert result.stdout == ""


def test_a_database_away_is_an_error_not_a_traceback(pick_port: Any) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{pick_port()}/dharma?connect_timeout=2"
    result = cli("--json", DHARMA_POSTGRES_DSN=dsn)
    assert result.exit_code == 1
    assert "error:" in result.stderr and result.stdout == ""


def asset_event(rid: str, team: str, env: str, itype: str, rate: float, ts: int
                ) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "type": "asset", "resource_id": rid,
            "attributes": {"action": "created", "asset_type": "app", "name": rid,
                           "provider": "aws", "region": "us-east-1", "team": team,
                           "env": env, "instance_type": itype, "hourly_cost": rate}}


def sample(rid: str, metric: str, value: float, ts: int) -> dict[str, Any]:
    return {"source": rid, "metric": metric, "value": value, "ts": ts, "labels": {},
            "unit": "percent"}


def produce(settings: Any, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Each (topic, value), keyed by its resource; flushed, and the producer closed."""
    producer = AvroProducer(Producer(settings.kafka.confluent_config()),
                            registry_client(settings))
    for topic, value in events:
        producer.produce(topic, value.get("resource_id") or value["source"], value)
    producer.flush()


def test_events_and_samples_through_the_cost_worker_become_recommendations(
        settings: Any, start_worker: Any, poll: Any) -> None:
    team = f"kafka-{uuid.uuid4().hex[:8]}"
    app_id, web_id = f"{team}-app", f"{team}-web"
    now = int(time.time() * 1000)
    at = now - now % HOUR  # the last closed hour is accrued by the worker's timer
    start_worker("cost", DHARMA_COST_TICK_S="0.5")
    events = [("infrastructure.events", asset_event(app_id, team, "prod", *APP, at - 72 * HOUR)),
              ("infrastructure.events", asset_event(web_id, team, "dev", *WEB, at - 72 * HOUR))]
    for h in (at - (i + 1) * HOUR for i in range(72)):
        for minute, low in ((5, 2.0), (35, 0.0)):  # two samples an hour: it keeps the highest
            ts = h + minute * 60_000
            events += [("metrics.raw", sample(app_id, m, 10.0 - low, ts))
                       for m in ("cpu_utilization", "memory_utilization")]
            busy = 60.0 - low if business(h) else 3.0 - low
            events.append(("metrics.raw", sample(web_id, "cpu_utilization", busy, ts)))
    produce(settings, events)

    def recommended() -> dict[str, Any] | None:
        result = cli("--json", "--team", team, "--at", str(at))
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        by_type = {r["type"]: r for r in out["recommendations"]}
        ready = by_type.keys() == {"right_size", "schedule_shutdown"} and \
            by_type["right_size"]["evidence"]["cpu_hours"] == "72"
        return by_type if ready else None

    by_type = poll(recommended, "right-size and shutdown from the worker's rows")
    assert (by_type["right_size"]["subject"], by_type["right_size"]["proposed"]) == \
        (app_id, "m5.large")
    assert by_type["right_size"]["evidence"]["cpu_p99.5_percent"] == "10"
    assert by_type["schedule_shutdown"]["subject"] == web_id
    assert by_type["schedule_shutdown"]["evidence"]["cpu_max_off_hours_percent"] == "3"
