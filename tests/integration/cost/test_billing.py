"""Real bills through Kafka: ``dharma cost import`` → ``billing.focus`` → the cost worker
→ ``cost_billed``; poisoned records dead-lettered; ``dharma cost reconcile`` against
estimated ``cost_rows`` the test writes (tables created by the cost core's store).

The sample export (tests/data/focus_sample.csv) is written from the FOCUS 1.x column
definitions.  The import test renames its resources and account per run, so its lines
are its own whatever ran before in the session.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from hostile import worker_metrics
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from dharma.agents.cost.focus import billed_row
from dharma.agents.cost.focus_csv import parse_focus_csv
from dharma.cli import app
from dharma.sinks.bills import BillStore
from dharma.sinks.costs import connect_store
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.tailer import Tailer
from dharma.streams.topics import BILLING_FOCUS

# the PostgreSQL a test stops and starts again is the trust flow tests' (``trust_servers``)
sys.path.insert(0, str(Path(__file__).parents[1] / "trust"))
from trust_servers import own_postgres

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "focus_sample.csv"
ACCOUNT = "123456789012"

runner = CliRunner()


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def stored(settings: Any, line_ids: list[str], dsn: str | None = None) -> int:
    with psycopg.connect(dsn or settings.postgres.dsn.get_secret_value(),
                         autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM cost_billed WHERE x_line_id = ANY(%s)",
                           (line_ids,)).fetchone()
        return int(row[0]) if row else 0


def caught_up(settings: Any, worker: Any) -> bool:
    """Whether the worker's group has committed the end of every billing.focus partition."""
    group = f"{worker.env['DHARMA_WORKER_APP_ID']}-cost"
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": group,
                         "enable.auto.commit": False})
    try:
        parts = consumer.list_topics(BILLING_FOCUS.name, timeout=10).topics[
            BILLING_FOCUS.name].partitions
        tps = [TopicPartition(BILLING_FOCUS.name, p) for p in parts]
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
        committed = consumer.committed(tps, timeout=10)
        return all(c.offset >= end for c, end in zip(committed, ends, strict=True))
    finally:
        consumer.close()


def own_sample(tmp_path: Path, bad_line: str | None = None) -> tuple[Path, list[str]]:
    """The sample with this run's resource and account names (and ``bad_line`` as the
    file's line 4); the ids of its valid lines."""
    tag = uuid.uuid4().hex[:8]
    lines = SAMPLE.read_text(encoding="utf-8").replace("sample-", f"s{tag}-") \
        .replace(ACCOUNT, f"acct-{tag}").splitlines(keepends=True)
    ids = [r["x_line_id"] for _, r in parse_focus_csv("".join(lines)).records]
    if bad_line is not None:
        lines.insert(3, bad_line)
    path = tmp_path / f"focus-{tag}.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path, ids


def test_an_import_stores_each_line_once_and_a_fixed_file_imports_again(
        settings: Any, start_worker: Callable[..., Any], poll: Callable[..., Any],
        tmp_path: Path) -> None:
    worker = start_worker("cost")
    first = SAMPLE.read_text(encoding="utf-8").splitlines()[1]
    with_bad, ids = own_sample(tmp_path, first.replace("0.9984,", '"12,50",', 1) + "\n")
    result = cli("cost", "import", str(with_bad))
    assert result.exit_code == 1, result.output
    assert "line 4: BilledCost: '12,50' is not a FOCUS number" in result.stderr
    assert result.stdout.strip() == "9 lines sent to billing.focus, 1 invalid"
    poll(lambda: stored(settings, ids) == 9, "the nine valid lines stored")

    fixed = with_bad.with_name("fixed.csv")
    fixed.write_text("".join(with_bad.read_text().splitlines(keepends=True)[:3]
                             + with_bad.read_text().splitlines(keepends=True)[4:]))
    again = cli("cost", "import", str(fixed), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {"sent": 9, "invalid": 0}
    poll(lambda: caught_up(settings, worker), "the worker past the second import")
    assert stored(settings, ids) == 9
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        row = conn.execute(
            'SELECT "BilledCost", "Tags", "ChargePeriodStart" = \'2025-03-01T00:00:00Z\' '
            'FROM cost_billed WHERE x_line_id = %s', (ids[0],)).fetchone()
    assert row == (Decimal("0.9984"), {"team": "web", "env": "prod", "backup": "true",
                                       "x_CostCenter": "cc-100"}, True)


def test_poisoned_records_are_dead_lettered_and_the_rest_stored(
        settings: Any, start_worker: Callable[..., Any], poll: Callable[..., Any],
        tmp_path: Path) -> None:
    start_worker("cost")
    path, _ = own_sample(tmp_path)
    records = [r for _, r in parse_focus_csv(path.read_text()).records]
    good, forged, backwards = records[0], dict(records[1]), dict(records[2])
    forged["BilledCost"] = Decimal("0.01")      # the id no longer matches the content
    backwards["ChargePeriodEnd"] = backwards["ChargePeriodStart"]
    key = good["ResourceId"]
    producer = AvroProducer(Producer(settings.kafka.confluent_config()),
                            registry_client(settings))
    with Tailer(settings, [BILLING_FOCUS.dlq.name], from_beginning=True) as dlq:
        for record in (forged, backwards, good):
            producer.produce(BILLING_FOCUS.name, key, record)
        producer.producer.produce(BILLING_FOCUS.name, key=key.encode(), value=b"not avro")
        assert producer.flush() == 0
        letters: list[dict[str, Any]] = []

        def three_letters() -> bool:
            letters.extend(v for _, v in dlq.poll(0.5)
                           if key.encode() in (v["original_key"] or b""))
            return len(letters) >= 3

        poll(three_letters, "three dead letters")
    reasons = sorted((v["error_kind"], v["reason"]) for v in letters)
    assert [kind for kind, _ in reasons] == ["contract_violation", "contract_violation",
                                            "undecodable"]
    assert "must be after ChargePeriodStart" in reasons[0][1]
    assert "is not the hash of the line's content" in reasons[1][1]
    poll(lambda: stored(settings, [good["x_line_id"]]) == 1, "the good line stored")
    assert stored(settings, [forged["x_line_id"], backwards["x_line_id"]]) == 0


def test_postgres_away_holds_the_lines_and_stores_each_once_when_back(
        settings: Any, start_worker: Callable[..., Any], poll: Callable[..., Any],
        pick_port: Callable[[], int], tmp_path: Path) -> None:
    with own_postgres(pick_port()) as pg:
        worker = start_worker("cost", DHARMA_POSTGRES_DSN=pg.url,
                              DHARMA_WORKER_SINK_MAX_BACKOFF_S="1")
        before, before_ids = own_sample(tmp_path)
        assert cli("cost", "import", str(before)).exit_code == 0
        poll(lambda: stored(settings, before_ids, pg.url) == 9, "lines stored before")
        pg.stop()
        during, during_ids = own_sample(tmp_path)
        assert cli("cost", "import", str(during)).exit_code == 0   # the broker takes them
        threading.Event().wait(8)  # the outage itself: the worker's batch meets it
        pg.start()
        poll(lambda: stored(settings, during_ids, pg.url) == 9, "lines stored once back",
             timeout=120)
        poll(lambda: caught_up(settings, worker), "the worker past the outage")
        assert stored(settings, before_ids + during_ids, pg.url) == 18
        keys = {r["ResourceId"] or r["BillingAccountId"]
                for _, r in parse_focus_csv(during.read_text()).records}
        with Tailer(settings, [BILLING_FOCUS.dlq.name], from_beginning=True) as dlq:
            letters = [v for _ in range(6) for _, v in dlq.poll(0.5)]
        assert not [v for v in letters if (v["original_key"] or b"").decode() in keys]
        held = [s.value for f in text_string_to_metric_families(worker_metrics(worker, poll))
                for s in f.samples if s.name == "dharma_sink_outages_total"
                and s.labels.get("outcome") == "written"]
        assert sum(held) >= 1   # the batch was held through the outage, then written


def estimate(conn: psycopg.Connection, resource: str, day: str, cost: str | None,
             granularity: str = "day") -> None:
    conn.execute(
        'INSERT INTO cost_rows ("ResourceId", "ResourceName", "ResourceType", x_granularity, '
        '"ChargePeriodStart", "ChargePeriodEnd", "EffectiveCost", "BillingCurrency", '
        '"ServiceName", "RegionId", "ProviderName", x_team, x_env, x_unpriced_hours) '
        "VALUES (%s, %s, 'app', %s, %s::timestamptz, %s::timestamptz + interval '1 day', %s, "
        "'USD', 'compute', 'us-east-1', 'aws', 'web', 'prod', %s) "
        'ON CONFLICT ("ResourceId", x_granularity, "ChargePeriodStart") '
        'DO UPDATE SET "EffectiveCost" = EXCLUDED."EffectiveCost"',
        (resource, resource, granularity, day, day, cost, 24.0 if cost is None else 0.0))


async def cost_tables(dsn: str) -> None:
    """``cost_rows`` as the cost core's store creates it."""
    store = await connect_store(dsn)
    await store.close()


@pytest.fixture
def sample_beside_estimates(settings: Any) -> None:
    """The sample's lines in cost_billed; estimates for its resources in cost_rows."""
    store = BillStore(settings.postgres.dsn.get_secret_value())

    async def write() -> None:
        await store.setup()
        try:
            rows = [billed_row(r) for _, r in parse_focus_csv(SAMPLE.read_text()).records]
            await store.write(rows)
        finally:
            await store.close()

    asyncio.run(write())
    asyncio.run(cost_tables(settings.postgres.dsn.get_secret_value()))
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        for resource, day, cost in [
                ("sample-web-01", "2025-03-01", "0.9984"),
                ("sample-web-01", "2025-03-02", "0.9984"),
                ("sample-db-01", "2025-03-01", "4.5"),
                ("sample-cache-01", "2025-03-01", "0.5"),
                ("sample-cache-01", "2025-03-02", "0.5"),
                ("sample-bucket-01", "2025-03-01", "0.0023"),
                ("sample-app-02", "2025-03-01", None),
                ("sample-queue-01", "2025-03-01", "0.75")]:
            estimate(conn, resource, day, cost)
        estimate(conn, "sample-web-01", "2025-03-01T05:00:00Z", "7", granularity="hour")


def reconciled(*args: str) -> list[dict[str, Any]]:
    result = cli("cost", "reconcile", *args, "--json")
    assert result.exit_code == 0, result.output
    return [r for r in json.loads(result.stdout) if r["resource_id"].startswith("sample-")]


@pytest.mark.usefixtures("sample_beside_estimates")
def test_reconcile_reports_what_differs_or_is_on_one_side_only() -> None:
    rows = reconciled("--from", "2025-03-01T00:00:00Z", "--to", "2025-03-03T00:00:00Z")
    assert [(r["resource_id"], r["day"], r["status"]) for r in rows] == [
        ("sample-db-01", "2025-03-02", "billed_only"),
        ("sample-app-02", "2025-03-01", "unpriced"),
        ("sample-queue-01", "2025-03-01", "estimated_only"),
        ("sample-web-01", "2025-03-02", "differs"),
    ]
    web = rows[3]
    assert (web["billed"], web["estimated"]) == (1.2, 0.9984)
    assert web["difference"] == pytest.approx(0.2016)
    assert web["relative_difference"] == pytest.approx(0.168)
    assert (rows[1]["billed"], rows[1]["estimated"]) == (2.5, None)
    assert (rows[2]["billed"], rows[2]["difference"]) == (None, -0.75)
    tighter = reconciled("--from", "2025-03-01T00:00:00Z", "--to", "2025-03-03T00:00:00Z",
                         "--threshold", "0.01")
    db = [r for r in tighter if r["resource_id"] == "sample-db-01" and r["day"] == "2025-03-01"]
    assert [(r["billed"], r["estimated"], r["relative_difference"]) for r in db] == [
        (4.608, 4.5, pytest.approx(0.0234375))]
    # a line spanning two days (the cache's, noon to noon) is spread over them: both agree
    assert not [r for r in tighter if r["resource_id"] == "sample-cache-01"]


@pytest.mark.usefixtures("sample_beside_estimates")
def test_reconcile_covers_whole_days_from_the_one_holding_from() -> None:
    rows = reconciled("--from", "2025-03-02T06:00:00Z", "--to", "2025-03-03T00:00:00Z")
    assert [(r["resource_id"], r["day"]) for r in rows] == [
        ("sample-db-01", "2025-03-02"), ("sample-web-01", "2025-03-02")]
    bad = cli("cost", "reconcile", "--from", "2025-03-03T00:00:00Z", "--to", "2025-03-01T00:00:00Z")
    assert bad.exit_code == 2 and "--to must be after --from" in bad.output


def test_reconcile_without_estimates_says_so(settings: Any) -> None:
    dsn = settings.postgres.dsn.get_secret_value()
    name = f"bills_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    empty = psycopg.conninfo.make_conninfo(dsn, dbname=name)
    result = runner.invoke(app, ["cost", "reconcile", "--from", "2025-03-01T00:00:00Z",
                                 "--to", "2025-03-02T00:00:00Z"],
                           env={"DHARMA_POSTGRES_DSN": empty})
    assert result.exit_code == 1
    assert "no cost_rows table: the cost topology has estimated nothing yet" in result.stderr


def test_an_import_of_a_file_that_is_not_utf8_or_not_focus_says_so(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes(SAMPLE.read_bytes().replace(b"web 1", b"caf\xe9 1"))
    result = cli("cost", "import", str(latin))
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())   # rich wraps long lines
    assert f"{latin}: not UTF-8 text (invalid continuation byte)" in said
    other = tmp_path / "inventory.csv"
    other.write_text("resource_id,team\nweb-01,web\n")
    result = cli("cost", "import", str(other))
    assert result.exit_code == 1
    assert "not a FOCUS export: no BilledCost, BillingAccountId" in " ".join(result.stderr.split())
