"""Compatibility levels, decided by Apache ``avro``'s reader/writer checker (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from dharma.infra.registry.errors import invalid_compatibility


class Level(StrEnum):
    """Confluent compatibility levels."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def of(cls, value: object) -> Level:
        """Parse a level name case-insensitively (raises 42203)."""
        try:
            return cls(str(value).upper())
        except ValueError:
            raise invalid_compatibility(value) from None

    @property
    def transitive(self) -> bool:
        """Whether the check runs against every version, not only the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """Whether the new schema must read data written with the old ones."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Whether the old schemas must read data written with the new one."""
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = Level.BACKWARD


@dataclass(frozen=True)
class CompatResult:
    """Outcome of a check; ``messages`` explains each incompatibility."""

    is_compatible: bool
    messages: list[str] = field(default_factory=list)


def can_read(reader: avro.schema.Schema, writer: avro.schema.Schema) -> list[str]:
    """Problems a ``reader`` meets decoding ``writer`` data; empty when it can."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    locations = ", ".join(sorted(result.locations))
    return [f"{message} (at {locations})" for message in sorted(result.messages)] or [
        f"incompatible at {locations}"
    ]


def check(
    level: Level,
    candidate: avro.schema.Schema,
    existing: Sequence[tuple[int, avro.schema.Schema]],
) -> CompatResult:
    """Check ``candidate`` against ``(version, schema)`` pairs, oldest first, under ``level``.

    Non-transitive levels only look at the newest of ``existing``.

    >>> import avro.schema as s
    >>> v1 = s.parse('{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}')
    >>> v2 = s.parse('{"type":"record","name":"R","fields":[{"name":"a","type":"int"},'
    ...              '{"name":"b","type":"int"}]}')
    >>> check(Level.BACKWARD, v2, [(1, v1)]).is_compatible
    False
    >>> check(Level.FORWARD, v2, [(1, v1)]).is_compatible
    True
    """
    if level is Level.NONE or not existing:
        return CompatResult(True)
    targets = list(existing) if level.transitive else [existing[-1]]
    messages: list[str] = []
    for version, previous in targets:
        if level.backward:
            prefix = f"new schema cannot read version {version}: "
            messages += [prefix + m for m in can_read(candidate, previous)]
        if level.forward:
            prefix = f"version {version} cannot read the new schema: "
            messages += [prefix + m for m in can_read(previous, candidate)]
    return CompatResult(not messages, messages)
