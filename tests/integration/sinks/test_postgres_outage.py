"""PostgreSQL stopped for 20 s under a steady metrics stream, then started again.

The ingest worker holds its batch (partitions paused, the write retried with
backoff) instead of dead-lettering valid samples after the sink's own few seconds
of retries: once PostgreSQL is back every sample is stored once, nothing is
dead-lettered, the rolling statistics count exactly what was stored and the
group's lag drains.  The test caps the wait between two writes of the held batch
at 2 s (the default is 15 s): the outage lasts ten such waits, so the hold goes
through the capped backoff as a longer outage does.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from hostile import worker_metrics
from prometheus_client.parser import text_string_to_metric_families
from sink_helpers import METRIC, Feed, lag, letters_of, stored_rows
from trust_servers import own_postgres

from dharma.streams.topics import METRICS_RAW

pytestmark = pytest.mark.integration

OUTAGE_S = 20.0
MAX_BACKOFF_S = 2.0


def outages(metrics_text: str, outcome: str) -> float:
    """``dharma_sink_outages_total{outcome}`` of a worker's ``/metrics`` text."""
    return sum(s.value for f in text_string_to_metric_families(metrics_text)
               for s in f.samples if s.name == "dharma_sink_outages_total"
               and s.labels.get("outcome") == outcome)


def test_postgres_away_under_a_steady_feed_loses_and_duplicates_nothing(
        settings: Any, pick_port: Any, start_worker: Any, read_changelog: Any,
        poll: Any) -> None:
    group, tag = f"pgout{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    sources = [f"outage-{tag}-{i}" for i in range(4)]
    with own_postgres(pick_port()) as pg:
        worker = start_worker("ingest", DHARMA_POSTGRES_DSN=pg.url, DHARMA_WORKER_APP_ID=group,
                              DHARMA_WORKER_SINK_MAX_BACKOFF_S=str(MAX_BACKOFF_S))
        with Feed(settings, sources, per_second=10) as feed:
            poll(lambda: stored_rows(pg.url, sources)[0] > 0, "samples stored before")
            pg.stop()
            threading.Event().wait(OUTAGE_S)  # the outage itself, under the steady feed
            pg.start()
            poll(lambda: stored_rows(pg.url, sources)[0] >= feed.sent, "caught up", timeout=120)
        sent = feed.sent
        rows = poll(lambda: (r := stored_rows(pg.url, sources))[0] == sent and r,
                    f"all {sent} samples stored", timeout=60,
                    describe=lambda: f"stored {stored_rows(pg.url, sources)}")
        assert rows == (sent, sent)  # none lost, none twice
        assert sent > OUTAGE_S * 5  # the feed kept going through the outage

        assert letters_of(settings, METRICS_RAW.dlq.name, tag) == []  # nothing dead-lettered
        assert outages(worker_metrics(worker, poll), "written") >= 1  # it held, then wrote
        poll(lambda: lag(settings, f"{group}-ingest", METRICS_RAW.name) == 0, "lag drained",
             describe=lambda: f"lag {lag(settings, f'{group}-ingest', METRICS_RAW.name)}")

        # the rolling statistics counted exactly the stored samples of each series
        changelog = f"{group}-ingest-series-stats-changelog"
        for i, source in enumerate(sources):
            expected = sent // len(sources) + (1 if i < sent % len(sources) else 0)
            poll(lambda s=source, n=expected: (read_changelog(
                settings, changelog, f"{s}|{METRIC}") or {}).get("count") == n,
                f"stats of {source} count {expected}")
