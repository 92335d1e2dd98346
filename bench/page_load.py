"""The live load of ``dharma bench page``: records on the topics the page shows live.

Paced at ``rate`` records/s for as long as a phase lasts, of three kinds, as their
producers emit them: of every 20 records, 18 are anomaly scores of the seeded series
(:func:`~dharma.bench.api_seed.prediction_record`, a random series each, warm), one
is an alert notification on a resource that has incidents (the first
``alert_sources`` hosts: :func:`~dharma.bench.api_seed.store_incidents` roots one
there) and one is an access decision of the trust engine.  Each is stamped with the
wall clock when it is produced, so it is the newest of its series, alert or user.

>>> [kind_of(i) for i in range(20)].count("prediction"), kind_of(0), kind_of(1)
(18, 'alert', 'decision')
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Producer

from dharma.agents.trust.engine import Decision, Verdict
from dharma.bench.api_seed import alert_notification, prediction_record, user_of
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.settings import Settings
from dharma.streams.topics import ALERTS, PREDICTIONS

__all__ = ["PageLoad", "kind_of"]

#: Past the warm-up of every series: live scores are warm.
WARM_STEP = 1_000
_VERDICTS = (Verdict.ALLOW, Verdict.ALLOW, Verdict.ALLOW, Verdict.DENY, Verdict.CHALLENGE)


def kind_of(i: int) -> str:
    """The kind of the ``i``-th record of a load: alert, decision or prediction."""
    return {0: "alert", 1: "decision"}.get(i % 20, "prediction")


def decision_record(i: int, ts: int, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """The ``i``-th access decision of a load (``TrustDecision``), keyed by its user."""
    verdict = rng.choice(_VERDICTS)
    user = user_of(rng.randrange(500))
    decision = Decision(
        decision=verdict, event_id=f"page-bench-{ts}-{i}", ts_ms=ts, user_id=user,
        device_id=f"dev_{rng.randrange(900):03d}", resource="database/production/customer_db",
        action="read", policy_id=None if verdict is not Verdict.ALLOW else "bench-policy",
        policy_version="bench",
        reasons=() if verdict is Verdict.ALLOW else ("trust level LOW below MEDIUM",))
    return user, decision.to_record()


class PageLoad:
    """Produces the load while a phase runs (:meth:`flowing`); counts what it sent."""

    def __init__(self, settings: Settings, series: int, alert_sources: int,
                 seed: int) -> None:
        self.series, self.alert_sources = series, alert_sources
        self._rng = random.Random(seed)
        self._next = 0
        self._producer = AvroProducer(
            Producer({**settings.kafka.confluent_config(), "linger.ms": 5}),
            registry_client(settings))

    def _record(self, ts: int) -> tuple[str, str, dict[str, Any]]:
        i, rng = self._next, self._rng
        self._next += 1
        kind = kind_of(i)
        if kind == "alert":
            key, value = alert_notification(i, ts, rng, self.alert_sources)
            return ALERTS.name, key, value
        if kind == "decision":
            return (PREDICTIONS.name, *decision_record(i, ts, rng))
        return (PREDICTIONS.name,
                *prediction_record(rng.randrange(self.series), WARM_STEP, ts, rng))

    def _pace(self, rate: float, stop: threading.Event, sent: Counter[str]) -> None:
        started, done = time.perf_counter(), 0
        while not stop.is_set():
            due = int((time.perf_counter() - started) * rate) + 1
            for _ in range(done, due):
                topic, key, value = self._record(int(time.time() * 1000))
                self._producer.produce(topic, key, value)
                sent[kind_of(self._next - 1)] += 1
            done = max(done, due)
            self._producer.poll(0)
            stop.wait(0.005)
        self._producer.flush(30)

    @contextmanager
    def flowing(self, rate: float) -> Iterator[Counter[str]]:
        """``rate`` records/s (none when 0) until the block ends; yields the counts sent
        by kind (complete once the block has ended and the producer has flushed)."""
        sent: Counter[str] = Counter()
        if rate <= 0:
            yield sent
            return
        stop = threading.Event()
        thread = threading.Thread(target=self._pace, args=(rate, stop, sent), daemon=True)
        thread.start()
        try:
            yield sent
        finally:
            stop.set()
            thread.join(60)
