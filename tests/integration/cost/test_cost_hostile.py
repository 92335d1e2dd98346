"""Hostile input to the cost worker: records on its ledger changelog that no ledger of
ours may be taken for, and forged lifecycle events.

Before a worker of a fresh consumer group starts, its ``cost-ledgers`` changelog gets
one record per hostile kind under the key of an asset that is then fed (a pickle that
would create a marker file, not JSON, a list, a NaN, ..., a ledger dated a year ahead,
one holding another asset's events), and a control asset gets a valid ledger.  The
worker must accrue every asset (the poisoned ones afresh, the control one from its
ledger), count every refusal and run nothing.  A ``created`` event dated far in the
future (it would bill time that has not happened) and a negative price are
dead-lettered with their reason.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hostile import (
    exec_pickle,
    hostile_json_values,
    rejected_count,
    worker_metrics,
    write_changelog,
)

from dharma.agents.cost.logic import Lifecycle, Placement
from dharma.agents.cost.state import LEDGER_TABLE, Ledger
from dharma.schemas import schema_text
from dharma.streams.admin import registry_client
from dharma.streams.checkpoint import table_key
from dharma.streams.producer import AvroProducer
from dharma.streams.tailer import Tailer
from dharma.streams.topics import INFRASTRUCTURE_EVENTS

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
TOPIC = INFRASTRUCTURE_EVENTS.name


def partition_of(settings: Any) -> Callable[[str], int]:
    """The partition an asset's events (and so its ledger) go to (librdkafka: CRC-32)."""
    ser = AvroSerializer(registry_client(settings), schema_text(f"{TOPIC}-key"))
    context = SerializationContext(TOPIC, MessageField.KEY)
    return lambda rid: zlib.crc32(ser(rid, context)) % INFRASTRUCTURE_EVENTS.partitions


def asset(rid: str, action: str, ts: int, cost: float = 1.0) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "type": "asset", "resource_id": rid,
            "attributes": {"action": action, "asset_type": "app", "name": rid,
                           "provider": "aws", "region": "eu-west-1", "team": "payments",
                           "env": "prod", "instance_type": "m5.large", "hourly_cost": cost}}


def accrued(settings: Any, rids: list[str]) -> dict[str, float]:
    """Each asset's hour-row cost so far."""
    with psycopg.connect(settings.postgres.dsn.get_secret_value()) as conn:
        rows = conn.execute(
            """SELECT "ResourceId", sum("EffectiveCost")::float8 FROM cost_rows
               WHERE x_granularity = 'hour' AND "ResourceId" = ANY(%s) GROUP BY 1""", (rids,))
        return dict(rows.fetchall())


def test_hostile_ledgers_never_stall_or_run_and_forged_events_are_dead_lettered(
        settings: Any, start_worker: Any, poll: Any, tmp_path: Path) -> None:
    group, prefix = f"hc{uuid.uuid4().hex[:8]}", f"hostile-{uuid.uuid4().hex[:6]}"
    now = int(time.time() * 1000)
    hour = now - now % HOUR_MS
    born = hour - 3 * HOUR_MS
    control = f"{prefix}-control"
    placement = Placement(control, "app", "payments", "prod", "aws", "eu-west-1", "m5.large")
    good = Ledger(control, (Lifecycle("c0", control, born, "created", placement, 2.0),))
    other = Ledger("someone-else", (Lifecycle("x0", "someone-else", born, "created",
                                              placement, 99.0),))
    marker = tmp_path / "executed"
    values = {**hostile_json_values(good.to_dict()), "exec_pickle": exec_pickle(marker),
              "ahead": orjson.dumps(Ledger(control, (Lifecycle(
                  "a0", control, now + 365 * 86_400_000, "created", placement, 2.0),)).to_dict()),
              "foreign": orjson.dumps({**other.to_dict(), "resource_id": "placeholder"})}
    rid = {kind: f"{prefix}-{kind}" for kind in values}
    values["foreign"] = orjson.dumps({**other.to_dict(), "resource_id": rid["foreign"]})
    partition = partition_of(settings)
    records = [(partition(rid[k]), table_key(rid[k]), v) for k, v in values.items()]
    records.append((partition(control), table_key(control), orjson.dumps(good.to_dict())))
    write_changelog(settings, f"{group}-cost-{LEDGER_TABLE}-changelog",
                    INFRASTRUCTURE_EVENTS.partitions, records)
    worker = start_worker("cost", DHARMA_WORKER_APP_ID=group, DHARMA_COST_TICK_S="0.5")

    producer = AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))
    for r in rid.values():
        producer.produce(TOPIC, r, asset(r, "created", born))
    # the control asset's creation is in its ledger: an update at its price is enough
    producer.produce(TOPIC, control, asset(control, "updated", born + HOUR_MS, cost=2.0))
    future = asset(f"{prefix}-future", "created", now + 86_400_000)
    negative = asset(f"{prefix}-negative", "created", born, cost=-5.0)
    for forged in (future, negative):
        producer.produce(TOPIC, forged["resource_id"], forged)
    producer.flush()

    rids = [*rid.values(), control]
    costs = poll(lambda: (c := accrued(settings, rids)) and len(c) == len(rids)
                 and all(v == pytest.approx(3.0 if r != control else 6.0) for r, v in c.items())
                 and c, "every asset accrued: the poisoned ones afresh", timeout=90,
                 describe=lambda: str(accrued(settings, rids)))
    assert costs[control] == pytest.approx(6.0)  # three hours at 2.0, from its ledger
    assert accrued(settings, [future["resource_id"], negative["resource_id"]]) == {}
    letters: list[dict[str, Any]] = []
    with Tailer(settings, [INFRASTRUCTURE_EVENTS.dlq.name], from_beginning=True) as dlq:
        def two_letters() -> bool:
            letters.extend(v for _, v in dlq.poll(0.5)
                           if prefix.encode() in (v["original_key"] or b""))
            return len(letters) >= 2

        poll(two_letters, "two dead letters")
    reasons = " ".join(v["reason"] for v in letters)
    assert "beyond the worker's clock" in reasons and "hourly_cost" in reasons
    assert not marker.exists(), "a changelog record ran code in the worker"
    text = worker_metrics(worker, poll)
    # "wrong_type" turns the first field into its own str: a valid ledger, of the control
    # asset, under another asset's key: refused by the accountant, not by the decoder
    assert rejected_count(text, LEDGER_TABLE) == len(values) - 1
    assert worker.proc.poll() is None, "the worker stopped"
