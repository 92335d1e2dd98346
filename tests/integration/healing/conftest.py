"""Fixtures of the self-healing flow tests: a producer, and the workers self-healing
needs (CMDB, ingest, healing) started once for a module that shares them."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from healing_support import FAST
from psycopg.conninfo import make_conninfo
from workers import WorkerProcess, start_at_end, stop_all

from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer

# the servers a test stops and starts are the trust flow tests' (``trust_servers``)
sys.path.insert(0, str(Path(__file__).parents[1] / "trust"))

#: Playbooks of the guard tests: the seed's restart for web servers, a short lease
#: for "batch" assets, a restart for databases, notification for the rest.
GUARD_PLAYBOOKS = """
- name: restart-service
  version: 1
  issue_types: [memory_leak]
  asset_types: [web, app]
  action: restart_service
  risk: LOW
  estimated_downtime_s: 30
  requires_approval: false
  pre_checks: [no_active_deployment, rollback_plan_exists, not_in_chaos_experiment]
  verification: {metric: memory_utilization, below: 80, window_s: 300, grace_s: 30}
  rollback: notify
  max_attempts: 1
- name: restart-batch
  version: 1
  issue_types: [memory_leak]
  asset_types: [batch]
  action: restart_service
  risk: LOW
  estimated_downtime_s: 5
  verification: {metric: memory_utilization, below: 80}
  timeout_s: 3
- name: restart-database
  version: 1
  issue_types: ["*"]
  asset_types: [db]
  action: restart_service
  risk: LOW
  estimated_downtime_s: 60
  verification: {metric: memory_utilization, below: 80}
- name: escalate
  version: 1
  issue_types: ["*"]
  action: notify
  risk: LOW
"""


@pytest.fixture
def own_database(settings: Any) -> Iterator[str]:
    """A database of its own on the session's server: the tick sees only this test."""
    dsn, name = settings.postgres.dsn.get_secret_value(), f"tick_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # a generated name, no input
    yield make_conninfo(dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def producer(settings: Any) -> AvroProducer:
    return AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))


@dataclass
class HealingWorkers:
    """The module's CMDB, ingest and healing workers (one consumer group)."""

    env: dict[str, str]
    logs: Path
    workers: dict[str, WorkerProcess]

    def restart_healing(self, sig: int) -> None:
        """Stop the healing worker with ``sig`` and start it again (same group)."""
        self.workers["healing"].stop(sig)
        self.workers["healing"] = WorkerProcess(
            "healing", self.env, self.logs / "healing-restarted.log").start()


@pytest.fixture(scope="module")
def healing_workers(settings: Any, stack_env: dict[str, str],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[HealingWorkers]:
    logs = tmp_path_factory.mktemp("healing")
    (logs / "playbooks").mkdir()
    (logs / "playbooks" / "guards.yaml").write_text(GUARD_PLAYBOOKS)
    group = f"g{uuid.uuid4().hex[:8]}"
    env = {**stack_env, **FAST, "DHARMA_WORKER_APP_ID": group,
           "DHARMA_HEALING_PLAYBOOK_DIR": str(logs / "playbooks")}
    workers = {}
    for topology in ("cmdb", "ingest", "healing"):
        start_at_end(settings, topology, group)
        workers[topology] = WorkerProcess(topology, env, logs / f"{topology}.log").start()
    yield HealingWorkers(env, logs, workers)
    stop_all(workers.values())
    for worker in workers.values():
        print(f"--- {worker.topology} worker log (tail) ---\n{worker.output()[-6000:]}")
