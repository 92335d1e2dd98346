"""A topology as a value: the capabilities a worker runs, the sinks they get, the topics
they consume and emit, and who dead-letters each consumed topic.

A :class:`Topology` is checked when it is built: each topic it consumes has exactly
one capability answering for its bad input (so rejected input never vanishes), a
capability dead-letters only what it consumes, and capability names are unique.
Building the value connects to nothing; :meth:`Topology.build` makes the Faust app
with the metrics registry it is given, so several topologies build in one process.

>>> from dharma.streams.topics import ALERTS, METRICS_RAW, PREDICTIONS
>>> scorer = Capability("anomaly", consumes=(METRICS_RAW,), emits=(PREDICTIONS, ALERTS),
...                     dead_letters=(METRICS_RAW,))
>>> print(Topology("scoring", (scorer,)).markdown())
| capability | consumes | dead-letters | sinks | emits |
|---|---|---|---|---|
| anomaly | metrics.raw | metrics.raw | - | ml.predictions, alerts.notifications |
>>> Topology("silent", (Capability("anomaly", consumes=(METRICS_RAW,)),))
Traceback (most recent call last):
...
dharma.topologies.topology.TopologyError: topology silent: nobody dead-letters metrics.raw
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

import faust

from dharma.streams.app import StreamContext, make_app
from dharma.streams.errors import DharmaError
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.settings import Settings
from dharma.streams.topics import TopicSpec

__all__ = ["COLUMNS", "Capability", "Register", "Topology", "TopologyError"]

#: Adds a capability's agent (its tables, timers) to an app; returns the agent.
Register = Callable[[faust.App, StreamContext], faust.types.AgentT]

#: The columns of :meth:`Topology.rows` ("dead-letters": the consumed topics whose
#: rejected input the capability sends to their ``.dlq`` twin).
COLUMNS = ("capability", "consumes", "dead-letters", "sinks", "emits")


class Store(Protocol):
    """A store a capability is given (a sink it writes, or a reader such as the alert
    silences), named as its topology describes it."""

    @property
    def name(self) -> str: ...


class TopologyError(DharmaError):
    """A topology that would lose input or run something other than it says."""


@dataclass(frozen=True)
class Capability:
    """One capability as a topology runs it."""

    name: str
    consumes: tuple[TopicSpec, ...]
    #: Topics it produces to, dead-letter topics included (its table changelogs aside).
    emits: tuple[TopicSpec, ...] = ()
    #: Consumed topics whose rejected input this capability sends to their dead-letter topic.
    dead_letters: tuple[TopicSpec, ...] = ()
    #: The stores it is given (written, or read as the anomaly silences are).
    sinks: tuple[Store, ...] = ()
    #: How to add it to an app (``None``: a capability described only, as in docs).
    register: Register | None = field(default=None, repr=False, compare=False)

    def row(self) -> tuple[str, ...]:
        """This capability as a row under :data:`COLUMNS`."""
        return (self.name, _names(self.consumes),
                _names(self.dead_letters),
                ", ".join(sink.name for sink in self.sinks) or "-", _names(self.emits))


def _names(topics: tuple[TopicSpec, ...]) -> str:
    return ", ".join(t.name for t in topics) or "-"


@dataclass(frozen=True)
class Topology:
    """What one worker runs: a name (its consumer group suffix) and its capabilities.

    ``settings`` are what :meth:`build` makes the app from (default: the environment's).
    """

    name: str
    capabilities: tuple[Capability, ...]
    settings: Settings | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = Counter(c.name for c in self.capabilities)
        if twice := sorted(n for n, count in names.items() if count > 1):
            self._fail(f"capability listed twice: {', '.join(twice)}")
        for c in self.capabilities:
            if stray := [t.name for t in c.dead_letters if t not in c.consumes]:
                self._fail(f"{c.name} dead-letters {', '.join(stray)}, which it does not consume")
        for topic, owners in self.dead_letter_owners().items():
            if not owners:
                self._fail(f"nobody dead-letters {topic}")
            if len(owners) > 1:
                self._fail(f"{topic} is dead-lettered by {' and '.join(owners)}")

    def _fail(self, problem: str) -> NoReturn:
        raise TopologyError(f"topology {self.name}: {problem}")

    def dead_letter_owners(self) -> dict[str, list[str]]:
        """Each consumed topic's name → the capabilities that dead-letter its bad input."""
        owners: dict[str, list[str]] = {}
        for c in self.capabilities:
            for topic in c.consumes:
                owners.setdefault(topic.name, [])
        for c in self.capabilities:
            for topic in c.dead_letters:
                owners[topic.name].append(c.name)
        return owners

    def rows(self) -> list[tuple[str, ...]]:
        """One row per capability, under :data:`COLUMNS`."""
        return [c.row() for c in self.capabilities]

    def markdown(self) -> str:
        """:meth:`rows` as a Markdown table."""
        lines = [f"| {' | '.join(COLUMNS)} |", f"|{'---|' * len(COLUMNS)}"]
        lines += [f"| {' | '.join(row)} |" for row in self.rows()]
        return "\n".join(lines)

    def build(self, metrics: PipelineMetrics) -> faust.App:
        """The Faust app of a worker of this topology, counting into ``metrics``.

        Raises :class:`TopologyError` when an agent consumes other topics than its
        capability declares, or a capability has nothing to register.
        """
        app, ctx = make_app(self.settings or Settings(), self.name, metrics)
        for capability in self.capabilities:
            if capability.register is None:
                self._fail(f"{capability.name} is described only, with nothing to register")
            agent = capability.register(app, ctx)
            consumed = set(agent.channel.topics)  # type: ignore[attr-defined]  # a TopicT
            if consumed != {t.name for t in capability.consumes}:
                self._fail(f"{capability.name} consumes {', '.join(sorted(consumed))}, "
                           f"not {_names(capability.consumes)} as declared")
        return app
