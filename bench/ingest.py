"""``dharma bench ingest``: events/s through the validation agent into PostgreSQL.

In the same run, on the same Avro stream, two ceilings as ratios: a bare
confluent-kafka consumer decoding with ``AvroDeserializer`` (the client's own
ceiling) and a Faust agent that only consumes and decodes (the framework's).
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg

from dharma.bench.harness import (
    bare_consumer_rate,
    bench_stack,
    faust_only_rate,
    metric_samples,
    produce,
    start_worker,
    steady_rate,
    stop,
)


def run(events: int = 100_000, series: int = 1_000) -> dict[str, Any]:
    """Measure the ingest topology against a bare consumer; figures as a dict."""
    with bench_stack() as (settings, env):
        produced = produce(settings, "metrics.raw", metric_samples(events, series))
        bare = bare_consumer_rate(settings, "metrics.raw", produced)
        faust_only = faust_only_rate(env, "metrics.raw", produced)
        log = Path(tempfile.mkdtemp()) / "worker.log"
        worker = start_worker("ingest", env, log, app_id=f"bench{uuid.uuid4().hex[:6]}")
        dsn = settings.postgres.dsn.get_secret_value()

        def stored() -> int:
            with psycopg.connect(dsn) as conn:
                try:
                    row = conn.execute("SELECT count(*) FROM metrics_raw").fetchone()
                except psycopg.errors.UndefinedTable:
                    return 0  # the sink creates it with its first batch
                return int(row[0]) if row else 0

        try:
            rate, seen = steady_rate(stored, produced)
        finally:
            stop(worker)
    return {
        "events": produced, "series": series, "stored": seen,
        "ingest_events_per_s": round(rate), "bare_consumer_events_per_s": round(bare),
        "ratio_to_bare_consumer": round(rate / bare, 3) if bare else None,
        "faust_only_events_per_s": round(faust_only),
        "ratio_to_faust_only": round(rate / faust_only, 3) if faust_only else None,
    }
