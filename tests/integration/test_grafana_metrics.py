"""Every metric name the Grafana dashboards and the Prometheus rules use is one the workers
export, read from the real ``/metrics`` of a worker of each topology.

Each topology's worker starts once against the session stack.  One undecodable record on
every topic they consume makes each worker read, dead-letter and commit, so its counters,
its latency histogram and its consumer-lag gauge carry samples (the other names are
registered, with their ``# TYPE`` line, from the start); once it committed, the gauge
shows every partition it consumes at lag 0.  A worker's names are the
sample names its families expose (a counter ``x``: ``x_total``; a histogram:
``_bucket``, ``_sum``, ``_count``).  ``up`` is Prometheus' own.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from promql import (
    dashboard_queries,
    load_dashboards,
    load_rules,
    metric_names,
    rule_queries,
    sample_names,
)
from workers import WorkerProcess

from dharma.topologies import TOPOLOGIES, topology

#: Series Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up"}
#: A worker of each topology on 2 busy cores: all seven start at once.
START_S = 240.0


def names_used_for(name: str) -> dict[str, set[str]]:
    """Metric names each source a worker of topology ``name`` is watched by uses."""
    dashboards = load_dashboards()
    sources = {"rules.yml": rule_queries(load_rules()),
               "dharma-streams.json": dashboard_queries(dashboards["dharma-streams"]),
               f"dharma-{name}.json": dashboard_queries(dashboards[f"dharma-{name}"])}
    return {source: {n for expr in exprs for n in metric_names(expr)} - PROMETHEUS_OWN
            for source, exprs in sources.items()}


def exported(url: str) -> dict[str, list[Sample]]:
    """Sample name → its samples, for every name the ``/metrics`` at ``url`` exposes (a
    family without samples yet: its names with none)."""
    names: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample_name in sample_names(family.name, family.type):
            names.setdefault(sample_name, [])
        for sample in family.samples:
            names.setdefault(sample.name, []).append(sample)
    return names


def metrics_url(worker: WorkerProcess, poll: Callable[..., Any]) -> str:
    found = poll(lambda: re.search(r"metrics\s+at\s+(http://127\.0\.0\.1:\d+/metrics)",
                                   worker.output()), f"{worker.topology} metrics URL", START_S)
    return str(found.group(1))


def partitions(samples: dict[str, list[Sample]], name: str) -> set[tuple[str, str]]:
    return {(s.labels["topic"], s.labels.get("partition", "")) for s in samples.get(name, [])}


def dead_lettered(url: str, consumed: set[str]) -> dict[str, list[Sample]] | None:
    """The samples at ``url`` once the junk of every consumed topic was dead-lettered."""
    samples = exported(url)
    letters = {topic for topic, _ in partitions(samples, "dharma_dead_lettered_total")}
    return samples if letters >= consumed else None


def lag_drained(url: str, consumed: set[tuple[str, str]]) -> bool:
    """Every consumed partition has its lag gauge, and all are at 0."""
    samples = exported(url)
    lags = samples.get("dharma_consumer_lag", [])
    return partitions(samples, "dharma_consumer_lag") == consumed and not any(
        s.value for s in lags)


def test_dashboards_and_rules_use_only_metrics_every_topology_exports(
        settings: Any, start_worker: Callable[..., WorkerProcess],
        poll: Callable[..., Any]) -> None:
    workers = {name: start_worker(name) for name in TOPOLOGIES}
    urls = {name: metrics_url(worker, poll) for name, worker in workers.items()}
    specs = {name: {t for c in topology(name, settings).capabilities for t in c.consumes}
             for name in workers}
    consumed = {name: {t.name for t in topics} for name, topics in specs.items()}
    producer = Producer(settings.kafka.confluent_config())
    junk = f"not avro {uuid.uuid4().hex}".encode()
    for topic in set().union(*consumed.values()):
        producer.produce(topic, key=b"grafana-check", value=junk)
    assert producer.flush(30) == 0

    failures = []
    for name, url in urls.items():
        samples = poll(lambda url=url, name=name: dead_lettered(url, consumed[name]),
                       f"{name}: the junk of {sorted(consumed[name])} dead-lettered", START_S)
        for source, names in names_used_for(name).items():
            if missing := sorted(names - samples.keys()):
                failures.append(f"{source} uses {missing}, not exported by the {name} worker")
    assert not failures, "\n".join(failures)
    for name, url in urls.items():  # one worker per topology: every partition is its own
        every = {(t.name, str(p)) for t in specs[name] for p in range(t.partitions)}
        poll(lambda url=url, every=every: lag_drained(url, every),
             f"{name}: consumer lag of every partition of {sorted(consumed[name])} at 0",
             START_S, describe=lambda url=url: repr(exported(url)["dharma_consumer_lag"]))
