"""``dharma dlq redrive``: dead letters back to their topic, each original stored once.

Samples are dead-lettered as ``sink_error`` (PostgreSQL stopped, a one-second
outage limit) next to a poison record (undecodable); PostgreSQL comes back (the
cause fixed); the redrive re-produces the samples, and a second run re-produces
nothing.  The poison, redriven, is dead-lettered again: never stored.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Producer
from sink_helpers import METRIC, Feed, lag, letters_of, stored_rows
from trust_servers import own_postgres

from dharma.cli.dlq import read_letters, redrive
from dharma.streams.topics import METRICS_RAW

pytestmark = pytest.mark.integration

DEAD = 20


def kinds(letters: list[dict[str, Any]]) -> list[str]:
    return sorted(letter["error_kind"] for letter in letters)


def test_redrive_stores_each_dead_lettered_sample_once(
        settings: Any, stack_env: dict[str, str], pick_port: Any,
        start_worker: Any, read_changelog: Any, poll: Any, tag: str) -> None:
    group, source = f"redrive{tag}", f"redrive-{tag}"
    dlq = METRICS_RAW.dlq.name
    changelog = f"{group}-ingest-series-stats-changelog"

    def stats_count() -> Any:
        return (read_changelog(settings, changelog, f"{source}|{METRIC}") or {}).get("count")

    with own_postgres(pick_port()) as pg:
        start_worker("ingest", DHARMA_POSTGRES_DSN=pg.url, DHARMA_WORKER_APP_ID=group,
                     DHARMA_WORKER_SINK_OUTAGE_LIMIT_S="1")
        feed = Feed(settings, [source], per_second=1)
        feed.send_one()
        poll(lambda: stored_rows(pg.url, [source]) == (1, 1), "the first sample stored")
        # the group starts at the end of metrics.raw, which the embedded broker reports
        # short of a partition's last record batch: what earlier tests left there must be
        # behind it before PostgreSQL stops, or it too would be dead-lettered (and redriven)
        poll(lambda: lag(settings, f"{group}-ingest", METRICS_RAW.name) == 0,
             "earlier tests' samples behind the worker")

        since = datetime.now(UTC).isoformat()  # this test's letters only
        pg.stop()
        for _ in range(DEAD):
            feed.send_one()
        raw = Producer(settings.kafka.confluent_config())
        raw.produce(METRICS_RAW.name, key=b"poison", value=b"\x01" + tag.encode() + os.urandom(8))
        raw.flush()
        poll(lambda: kinds(letters_of(settings, dlq, tag)) == ["sink_error"] * DEAD
             + ["undecodable"], "samples dead-lettered as sink_error, the poison undecodable",
             timeout=120, describe=lambda: str(kinds(letters_of(settings, dlq, tag))))
        assert poll(lambda: stats_count(), "stats") == 1  # only what PostgreSQL stored

        # one sample dead-lettered twice (as by a worker restarted before it committed,
        # or by two topologies consuming metrics.raw): it must go back once
        twice = next(msg for msg, letter in read_letters(settings, dlq)
                     if tag.encode() in (letter["original_value"] or b"")
                     and letter["error_kind"] == "sink_error")
        raw.produce(dlq, key=twice.key(), value=twice.value())
        raw.flush()

        pg.start()  # the cause, fixed
        ours = int(datetime.fromisoformat(since).timestamp() * 1000)  # not earlier tests'
        first = redrive(settings, METRICS_RAW.name, kind="sink_error", since_ms=ours)
        second = redrive(settings, METRICS_RAW.name, kind="sink_error", since_ms=ours)
        assert first["redriven"] == DEAD and first["already"] >= 1
        assert second["redriven"] == 0 and second["already"] >= DEAD
        poll(lambda: stored_rows(pg.url, [source]) == (DEAD + 1, DEAD + 1),
             "each sample stored once", describe=lambda: f"{stored_rows(pg.url, [source])}, "
             f"letters {kinds(letters_of(settings, dlq, tag))}")
        poll(lambda: stats_count() == DEAD + 1, "the stats count the redriven samples once")

        out = subprocess.run(  # the command itself, as an operator runs it
            [sys.executable, "-m", "dharma.cli", "dlq", "redrive", dlq,
             "--kind", "undecodable", "--since", since],
            env={**os.environ, **stack_env}, capture_output=True, text=True, timeout=120,
            check=True).stdout
        assert "redriven=" in out and "redriven=0" not in out
        poll(lambda: kinds(letters_of(settings, dlq, tag)).count("undecodable") == 2,
             "the poison, redriven, dead-lettered again")
        assert stored_rows(pg.url, [source]) == (DEAD + 1, DEAD + 1)
        assert kinds(letters_of(settings, dlq, tag)).count("sink_error") == DEAD + 1  # twice
