"""Helpers shared by the synthetic source tests (unique module name: no clash on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro

from dharma.synthetic import (
    AUDIT_TOPIC,
    INFRA_TOPIC,
    METRICS_TOPIC,
    IncidentConfig,
    ScriptedIncident,
    SyntheticSource,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
START_MS = 1_700_000_000_000
DAY_TICKS = 360  # a simulated day of 360 ten-second ticks (one hour of simulated time)


def load_schema(name: str) -> Any:
    """Parsed value schema of topic ``name``."""
    with (SCHEMAS / f"{name}-value.avsc").open() as fh:
        return fastavro.parse_schema(json.load(fh))


def all_schemas() -> dict[str, Any]:
    """Parsed value schemas by topic."""
    return {t: load_schema(t) for t in (METRICS_TOPIC, INFRA_TOPIC, AUDIT_TOPIC)}


SCRIPTED = (
    ScriptedIncident("memory_leak", "app-server-01", 60, 90),
    ScriptedIncident("cpu_spike", "web-server-01", 80, 20),
    ScriptedIncident("latency_shift", "db-primary-01", 120, 30),
    ScriptedIncident("disk_filling", "queue-01", 150, 60),
    ScriptedIncident("traffic_drop", "web-server-02", 200, 30),
    ScriptedIncident("cpu_spike", "cache-01", 250, 20, chaos=True),
)


def make_source(
    seed: int = 11,
    scripted: tuple[ScriptedIncident, ...] = SCRIPTED,
    random_incidents: bool = False,
    **kwargs: Any,
) -> SyntheticSource:
    """A source with a short day and, by default, only the scripted incidents."""
    rate = 6.0 if random_incidents else 0.0
    config = IncidentConfig(incidents_per_day=rate, chaos_per_day=rate / 6, scripted=scripted)
    return SyntheticSource(
        seed, START_MS, 10_000, day_length_ms=DAY_TICKS * 10_000, incidents=config, **kwargs
    )


def metric_table(source: SyntheticSource, ticks: int) -> dict[tuple[str, str], list[float]]:
    """Values per (source, metric) over ``ticks`` ticks."""
    table: dict[tuple[str, str], list[float]] = {}
    for batch in source.ticks(ticks):
        for e in batch:
            if e.topic == METRICS_TOPIC:
                table.setdefault((e.value["source"], e.value["metric"]), []).append(
                    e.value["value"]
                )
    return table
