"""The generator's estate over a simulated month, through Kafka: ``dharma cost report
--by team`` equals a pandas recomputation from the same events to the cent, and a late
``retired`` event corrects the days it affects."""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import replace
from typing import Any

import pandas as pd
import psycopg
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from dharma.cli import app
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.records import month_start
from dharma.synthetic import EstateConfig
from dharma.synthetic.lifecycle import churn_events

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def expected_by_team(events: list[dict[str, Any]], lo: int, hi: int, now: int
                     ) -> dict[str, float]:
    """Cost per team over [lo, hi) recomputed with pandas: each event's rate holds until
    the asset's next event (or now) while the asset lives (between a created and a
    retired: an update of a retired asset revives nothing)."""
    df = pd.DataFrame([{"id": e["event_id"], "rid": e["resource_id"], "ts": e["ts"],
                        "action": e["attributes"]["action"],
                        "order": {"created": 0, "updated": 1, "retired": 2}[
                            e["attributes"]["action"]],
                        "rate": e["attributes"]["hourly_cost"], "team": e["attributes"]["team"]}
                       for e in events]).drop_duplicates("id")
    df = df.sort_values(["rid", "ts", "order", "id"])
    df["end"] = df.groupby("rid")["ts"].shift(-1).fillna(now - now % HOUR_MS)
    df["live"] = df["action"].map({"created": 1.0, "retired": 0.0}).groupby(df["rid"]).ffill()
    df = df[df["live"] == 1.0]
    overlap = (df["end"].clip(upper=hi) - df["ts"].clip(lower=lo)).clip(lower=0)
    df = df.assign(cost=df["rate"] * overlap / HOUR_MS)
    return {team: float(cost) for team, cost in df.groupby("team")["cost"].sum().items()}


def report(lo: int, hi: int, tag: str) -> dict[str, float | None]:
    """The report's teams of this test (other tests' assets share the database)."""
    result = CliRunner().invoke(app, ["cost", "report", "--by", "team", "--from", str(lo),
                                      "--to", str(hi), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    costs = [r["cost"] for r in rows if r["cost"] is not None]
    assert costs == sorted(costs, reverse=True)
    return {r["team"]: r["cost"] for r in rows if r["team"].endswith(f"-{tag}")}


def matches(got: dict[str, float | None], want: dict[str, float]) -> bool:
    return got.keys() == want.keys() and all(
        got[t] is not None and abs(got[t] - want[t]) <= 0.005 + 1e-9  # type: ignore[operator]
        for t in want)


def test_a_simulated_month_reports_by_team_as_pandas_does(
        settings: Any, start_worker: Any, poll: Any) -> None:
    now = int(time.time() * 1000)
    hi = month_start(now)
    lo = month_start(hi - 1)  # last month, complete
    tag = uuid.uuid4().hex[:4]
    estate = replace(EstateConfig(), teams={k: f"{v}-{tag}" for k, v in
                                            EstateConfig().teams.items()})
    end = min(hi + DAY_MS, now - HOUR_MS)
    events = [e.value for e in churn_events(11, lo - 3 * DAY_MS, end, estate)]
    events = [{**e, "resource_id": f"{tag}-{e['resource_id']}"} for e in events]
    rng = random.Random(5)
    delivered = events + rng.sample(events, len(events) // 10)  # duplicates
    rng.shuffle(delivered)  # and any order
    producer = AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))
    start_worker("cost", DHARMA_COST_TICK_S="0.5")
    for event in delivered:
        producer.produce("infrastructure.events", event["resource_id"], event)
    producer.flush()

    want = expected_by_team(events, lo, hi, now)
    got = poll(lambda: (r := report(lo, hi, tag)) and matches(r, want) and r,
               "the month's report", timeout=120,
               describe=lambda: f"{report(lo, hi, tag)} != {want}")
    assert set(got) == {f"{t}-{tag}" for t in ("frontend", "payments", "data-platform",
                                               "platform")}

    # a late retire of a live production asset in the middle of the month
    victim = f"{tag}-app-server-01"
    retired_at = lo + 10 * DAY_MS + 7 * HOUR_MS + 123
    late = {"event_id": uuid.uuid4().hex, "ts": retired_at, "type": "asset",
            "resource_id": victim,
            "attributes": {**next(e["attributes"] for e in events
                                  if e["resource_id"] == victim), "action": "retired"}}
    producer.produce("infrastructure.events", victim, late)
    producer.flush()
    want = expected_by_team([*events, late], lo, hi, now)
    poll(lambda: matches(report(lo, hi, tag), want), "the corrected report", timeout=60,
         describe=lambda: f"{report(lo, hi, tag)} != {want}")
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        days: dict[int, Any] = dict(conn.execute(
            """SELECT extract(epoch FROM "ChargePeriodStart")::bigint * 1000, "EffectiveCost"
               FROM cost_rows WHERE "ResourceId" = %s AND x_granularity = 'day'""",
            (victim,)).fetchall())
        corrected = conn.execute(
            """SELECT count(*) FROM cost_corrections WHERE "ResourceId" = %s""",
            (victim,)).fetchone()
    retire_day = retired_at - retired_at % DAY_MS
    assert days[retire_day] > 0 and all(days[d] == 0 for d in days if d > retire_day)
    assert corrected is not None and corrected[0] > 0
