"""Alert → remediation request latency of a running healing worker.

A steady trickle of independent alerts (one web server each, so each opens an
incident of its own) at ``rate`` a second; a :class:`RequestWatch` beside it reads
``infrastructure.events`` from its end and notes when each target's ``requested``
remediation arrives.  The latency of an alert is that arrival minus the alert's
produce time minus the configured group wait (the time the worker holds a new
incident on purpose, collecting related alerts).

What is left is the worker's own time: consuming the alert and attaching it to a
new incident (CMDB dependencies), waiting for the next follow-up tick once the group
wait is over (up to ``DHARMA_HEALING_TICK_S``: the tick is what opens due incidents,
so its phase is part of the figure), then rooting, classifying, running the guards,
storing and publishing.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dharma.bench.harness import end_offsets
from dharma.bench.healing_load import alert
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.settings import Settings
from dharma.streams.topics import ALERTS, INFRASTRUCTURE_EVENTS

__all__ = ["RequestWatch", "latency_figures", "trickle"]


class RequestWatch:
    """Wall time (s) at which the first ``requested`` remediation of each of
    ``targets`` arrived on ``infrastructure.events`` (read from its current end)."""

    def __init__(self, settings: Settings, targets: Sequence[str]) -> None:
        self.targets = set(targets)
        self.arrivals: dict[str, float] = {}
        #: When the worker produced each request (its record's timestamp, s).
        self.published: dict[str, float] = {}
        self._decode = AvroDeserializer(registry_client(settings))
        self._context = SerializationContext(INFRASTRUCTURE_EVENTS.name, MessageField.VALUE)
        # the embedded broker holds a fetch for its whole wait: keep that out of the figure
        self._consumer = Consumer({**settings.kafka.confluent_config(), "log_level": 3,
                                   "group.id": "dharma-bench-watch", "fetch.wait.max.ms": 5,
                                   "enable.auto.commit": False})
        self._consumer.assign(end_offsets(settings, INFRASTRUCTURE_EVENTS.name))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.05)  # one at a time: the arrival is the figure
            if msg is None or msg.error() or b"rem-" not in (msg.value() or b""):
                continue
            arrived = time.time()
            event = self._decode(msg.value(), self._context)
            if (event["type"] == "remediation" and event["attributes"]["status"] == "requested"
                    and event["resource_id"] in self.targets):
                self.arrivals.setdefault(event["resource_id"], arrived)
                self.published.setdefault(event["resource_id"], msg.timestamp()[1] / 1000)

    def wait_for(self, targets: Sequence[str], timeout_s: float) -> bool:
        """Whether every one of ``targets`` was requested within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(t in self.arrivals for t in targets):
                return True
            time.sleep(0.1)
        return False

    def __enter__(self) -> RequestWatch:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


def trickle(producer: AvroProducer, targets: Sequence[str], rate: float) -> dict[str, float]:
    """One firing alert per target, ``rate`` a second; wall time (s) each was produced."""
    sent: dict[str, float] = {}
    started = time.monotonic()
    for i, target in enumerate(targets):
        time.sleep(max(0.0, started + i / rate - time.monotonic()))
        at = time.time()
        record = alert(target, int(at * 1000))
        producer.produce(ALERTS.name, record["fingerprint"], record)
        producer.flush(10)
        sent[target] = at
    return sent


def latency_figures(sent: dict[str, float], arrivals: dict[str, float],
                    group_wait_s: float, published: dict[str, float] | None = None
                    ) -> dict[str, Any]:
    """p50/p90/p99/max of (request arrival - alert produced - group wait), in ms; with
    ``published``, the same up to the request's record timestamp (the worker's part,
    without the delivery to a reader) as ``published_p50_ms`` and so on.

    >>> figures = latency_figures({"a": 0.0, "b": 0.0}, {"a": 1.3}, 1.0)
    >>> figures["requested"], figures["p50_ms"]
    (1, 300)
    """
    figures: dict[str, Any] = {"alerts": len(sent), "requested": len(arrivals.keys() & sent),
                               "group_wait_s": group_wait_s}
    figures.update(_percentiles(sent, arrivals, group_wait_s))
    if published:
        figures.update({f"published_{k}": v for k, v in
                        _percentiles(sent, published, group_wait_s).items()})
    return figures


def _percentiles(sent: dict[str, float], seen: dict[str, float],
                 group_wait_s: float) -> dict[str, int]:
    ms = sorted((seen[t] - at - group_wait_s) * 1000 for t, at in sent.items() if t in seen)
    if not ms:
        return {}
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {"p50_ms": round(cuts[49]), "p90_ms": round(cuts[89]), "p99_ms": round(cuts[98]),
            "max_ms": round(ms[-1]), "min_ms": round(ms[0])}
