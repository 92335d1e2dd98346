"""Compatibility levels decided by Apache avro's checker."""

from __future__ import annotations

import doctest
import json

import avro.schema
import pytest

from dharma.infra.registry import compat
from dharma.infra.registry.compat import Level, check
from dharma.infra.registry.errors import RegistryError

BASE = [{"name": "a", "type": "int"}]


def record(
    *extra: dict[str, object], base: list[dict[str, object]] | None = None
) -> avro.schema.Schema:
    fields = [*(BASE if base is None else base), *extra]
    return avro.schema.parse(json.dumps({"type": "record", "name": "R", "fields": fields}))


ADD_REQUIRED = record({"name": "b", "type": "string"})
ADD_OPTIONAL = record({"name": "b", "type": ["null", "string"], "default": None})
WIDEN = record(base=[{"name": "a", "type": "long"}])
RETYPE = record(base=[{"name": "a", "type": "string"}])
DROP = record(base=[])


@pytest.mark.parametrize(
    ("candidate", "backward", "forward"),
    [
        (ADD_REQUIRED, False, True),
        (ADD_OPTIONAL, True, True),
        (WIDEN, True, False),  # a long reader reads int data, not the reverse
        (RETYPE, False, False),
        (DROP, True, False),  # old readers need `a`, which has no default
    ],
)
def test_levels_against_latest(
    candidate: avro.schema.Schema, backward: bool, forward: bool
) -> None:
    existing = [(1, record())]
    assert check(Level.BACKWARD, candidate, existing).is_compatible is backward
    assert check(Level.FORWARD, candidate, existing).is_compatible is forward
    full = check(Level.FULL, candidate, existing)
    assert full.is_compatible is (backward and forward)
    assert check(Level.NONE, candidate, existing).is_compatible


def test_transitive_checks_every_version() -> None:
    v1 = record()
    v2 = record({"name": "b", "type": "int", "default": 0})
    v3 = record({"name": "b", "type": "int"})  # reads v2 data, not v1 data
    history = [(1, v1), (2, v2)]
    assert check(Level.BACKWARD, v3, history).is_compatible
    result = check(Level.BACKWARD_TRANSITIVE, v3, history)
    assert not result.is_compatible
    assert result.messages and all("version 1" in m for m in result.messages)


def test_no_history_is_compatible() -> None:
    assert check(Level.FULL_TRANSITIVE, RETYPE, []).is_compatible


def test_messages_locate_the_problem() -> None:
    result = check(Level.BACKWARD, RETYPE, [(1, record())])
    assert any("/fields/0/type" in m for m in result.messages)


@pytest.mark.parametrize("name", ["full", "FULL", "Backward_Transitive"])
def test_level_names_case_insensitive(name: str) -> None:
    assert Level.of(name).value == name.upper()


def test_unknown_level_is_42203() -> None:
    with pytest.raises(RegistryError) as info:
        Level.of("SIDEWAYS")
    assert (info.value.status, info.value.code) == (422, 42203)


def test_level_flags() -> None:
    assert Level.FULL_TRANSITIVE.backward and Level.FULL_TRANSITIVE.forward
    assert Level.FULL_TRANSITIVE.transitive and not Level.FULL.transitive
    assert not Level.FORWARD.backward and not Level.NONE.forward


def test_doctests() -> None:
    assert doctest.testmod(compat).failed == 0
