"""What the sink-backpressure and consumer-lag alerts read, while a store is away.

PostgreSQL stops under a steady metrics feed: the ingest worker holds its batch, so its
``/metrics`` shows ``dharma_sink_holding`` at 1 and ``dharma_consumer_lag`` of
``metrics.raw`` above 0 (the feed goes on, nothing is committed); once PostgreSQL is
back, the hold ends (gauge at 0) and the lag drains to 0.  The rules of
``infra/docker/prometheus/rules.yml`` alert on exactly these series.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sink_helpers import Feed, stored_rows
from trust_servers import own_postgres

from dharma.streams.topics import METRICS_RAW

pytestmark = pytest.mark.integration


def gauges(url: str) -> tuple[float, float]:
    """(batches held, summed lag of ``metrics.raw``) in the worker's ``/metrics``."""
    holding = lag = 0.0
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for s in family.samples:
            if s.name == "dharma_sink_holding":
                holding += s.value
            elif s.name == "dharma_consumer_lag" and s.labels["topic"] == METRICS_RAW.name:
                lag += s.value
    return holding, lag


def test_a_store_away_shows_as_a_held_batch_and_lag_until_it_is_back(
        settings: Any, pick_port: Any, start_worker: Any, poll: Callable[..., Any]) -> None:
    group, tag = f"gauge{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    sources = [f"gauge-{tag}-{i}" for i in range(2)]
    with own_postgres(pick_port()) as pg:
        worker = start_worker("ingest", DHARMA_POSTGRES_DSN=pg.url, DHARMA_WORKER_APP_ID=group,
                              DHARMA_WORKER_SINK_MAX_BACKOFF_S="2")
        url = poll(lambda: re.search(r"metrics\s+at\s+(http://127\.0\.0\.1:\d+/metrics)",
                                     worker.output()), "metrics URL").group(1)
        with Feed(settings, sources, per_second=10) as feed:
            poll(lambda: stored_rows(pg.url, sources)[0] > 0, "samples stored before")
            assert gauges(url)[0] == 0
            pg.stop()
            held, lag = poll(lambda: (g := gauges(url))[0] >= 1 and g[1] > 0 and g,
                             "a held batch and a growing lag", timeout=90,
                             describe=lambda: f"(held, lag) = {gauges(url)}")
            poll(lambda: gauges(url)[1] > lag, "the lag growing while held", timeout=60)
            pg.start()
            poll(lambda: stored_rows(pg.url, sources)[0] >= feed.sent, "caught up", timeout=120)
        assert held == 1.0  # one agent, one batch held
        poll(lambda: gauges(url) == (0.0, 0.0), "hold ended and lag drained", timeout=90,
             describe=lambda: f"(held, lag) = {gauges(url)}")
