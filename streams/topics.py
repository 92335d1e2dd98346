"""Every topic, declared once: name, partitions, key/value contracts, dead-letter twin.

Agents import these specs (and the Faust topics built from them in
:mod:`dharma.streams.app`) instead of spelling topic names.
"""

from __future__ import annotations

from dataclasses import dataclass

from dharma.schemas import DLQ_SUFFIX


@dataclass(frozen=True)
class TopicSpec:
    """A topic of the design: its name, partition count and whether it is consumed."""

    name: str
    partitions: int
    consumed: bool = True
    compacted: bool = False

    @property
    def value_subject(self) -> str:
        return f"{self.name}-value"

    @property
    def key_subject(self) -> str:
        return f"{self.name}-key"

    @property
    def dlq(self) -> TopicSpec:
        """The dead-letter topic for this topic's bad input."""
        return TopicSpec(f"{self.name}{DLQ_SUFFIX}", partitions=1, consumed=False)

    @property
    def redriven(self) -> TopicSpec:
        """Markers of the dead letters of this (dead-letter) topic that ``dharma dlq
        redrive`` re-produced: compacted, keyed ``partition:offset``."""
        return TopicSpec(f"{self.name}.redriven", partitions=1, consumed=False, compacted=True)


INFRASTRUCTURE_EVENTS = TopicSpec("infrastructure.events", 3)
AUDIT_LOGS = TopicSpec("audit.logs", 5)
METRICS_RAW = TopicSpec("metrics.raw", 10)
ALERTS = TopicSpec("alerts.notifications", 2)
PREDICTIONS = TopicSpec("ml.predictions", 3, consumed=False)  # produced only: no DLQ
#: Providers' bills, one FOCUS line a record (``dharma cost import``), keyed by resource.
BILLING_FOCUS = TopicSpec("billing.focus", 3)

#: The design's topics, in the seed's order (then those added since).
TOPICS: tuple[TopicSpec, ...] = (
    INFRASTRUCTURE_EVENTS, AUDIT_LOGS, METRICS_RAW, ALERTS, PREDICTIONS, BILLING_FOCUS,
)

#: Topics agents consume, and so those with a dead-letter topic.
CONSUMED: tuple[TopicSpec, ...] = (
    INFRASTRUCTURE_EVENTS, AUDIT_LOGS, METRICS_RAW, ALERTS, BILLING_FOCUS,
)

DEAD_LETTER_TOPICS: tuple[TopicSpec, ...] = tuple(t.dlq for t in CONSUMED)


def all_topics() -> tuple[TopicSpec, ...]:
    """Design topics plus their dead-letter twins."""
    return TOPICS + DEAD_LETTER_TOPICS


def by_name(name: str) -> TopicSpec:
    """Look a topic up by name (dead-letter topics included)."""
    for spec in all_topics():
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}; known: {', '.join(t.name for t in all_topics())}")
