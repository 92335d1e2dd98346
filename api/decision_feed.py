"""API access decisions on ``ml.predictions``, as the trust worker publishes them.

Same record (``TrustDecision``, key: the user id), so the live feed and the page
show the API's decisions like any other.  The audit trail in PostgreSQL is the
record of a decision and gates the answer (see :mod:`dharma.api.access`); this copy
is queued in librdkafka (which retries delivery for ``message.timeout.ms``) and
not awaited per request: a broker that is away delays the feed, not the API.
Failures are logged and counted (:attr:`DecisionFeed.failed`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from dharma.agents.trust.engine import Decision
from dharma.agents.trust.pipeline import TRUST_BRANCH
from dharma.streams.admin import registry_client
from dharma.streams.codec import AvroWire
from dharma.streams.settings import Settings
from dharma.streams.topics import PREDICTIONS

__all__ = ["DecisionFeed"]

logger = logging.getLogger(__name__)


class DecisionFeed:
    """Publishes decisions to ``ml.predictions`` (connects on first use)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: Producer | None = None
        self._wire: AvroWire | None = None
        #: decisions that did not reach the broker (encoding or delivery failed)
        self.failed = 0

    def _delivered(self, err: KafkaError | None, _: Message) -> None:
        if err is not None:
            self.failed += 1
            logger.warning("api decision not published error=%s", err)

    def _encode(self, record: dict[str, Any]) -> tuple[bytes, bytes]:
        if self._wire is None:
            self._wire = AvroWire(registry_client(self._settings))
        return (self._wire.encode_key(PREDICTIONS.key_subject, record["user_id"]),
                self._wire.encode(PREDICTIONS.value_subject, (TRUST_BRANCH, record)))

    async def publish(self, decision: Decision) -> None:
        """Queue ``decision`` (encoding off the event loop: the first one registers the
        schema); never raises."""
        try:
            key, value = await asyncio.to_thread(self._encode, decision.to_record())
            if self._producer is None:
                self._producer = Producer({**self._settings.kafka.confluent_config(),
                                           "linger.ms": 5, "acks": "all"})
            self._producer.produce(PREDICTIONS.name, value=value, key=key,
                                   on_delivery=self._delivered)
            self._producer.poll(0)
        except Exception:  # the feed is a copy: the audited decision stands
            self.failed += 1
            logger.exception("api decision not published decision_id=%s",
                             decision.decision_id)

    def close(self) -> None:
        """Send what is queued (up to 10 s) and let the client go."""
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None
