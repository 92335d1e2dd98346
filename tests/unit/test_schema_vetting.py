"""Writer schemas that would let a tiny record cost unbounded decoding work are refused."""

from __future__ import annotations

from typing import Any

import pytest

from dharma.schemas import load_schema
from dharma.streams.schema_vetting import MAX_DEPTH, SchemaRefused, vet_writer_schema
from dharma.streams.topics import TOPICS


def record(*fields: Any, name: str = "R") -> dict[str, Any]:
    return {"type": "record", "name": name,
            "fields": [{"name": f"f{i}", "type": t} for i, t in enumerate(fields)]}


@pytest.mark.parametrize("subject", sorted({s for t in TOPICS
                                            for s in (t.key_subject, t.value_subject)}))
def test_every_contract_passes(subject: str) -> None:
    vet_writer_schema(load_schema(subject))


@pytest.mark.parametrize("items", [
    "null", {"type": "null"}, record(), record("null", {"type": "fixed", "name": "Z", "size": 0}),
    {"type": "fixed", "name": "Empty", "size": 0}, record(record(name="Inner")),
])
def test_an_array_of_zero_width_items_is_refused(items: Any) -> None:
    with pytest.raises(SchemaRefused, match="zero-width"):
        vet_writer_schema(record("long", {"type": "array", "items": items}))


def test_a_zero_width_type_named_earlier_is_refused_where_it_is_referenced() -> None:
    schema = record(record(name="Nothing"), {"type": "array", "items": "Nothing"})
    with pytest.raises(SchemaRefused, match="zero-width"):
        vet_writer_schema(schema)


@pytest.mark.parametrize("items", [
    "long", "boolean", ["null", "long"], {"type": "enum", "name": "E", "symbols": ["only"]},
    {"type": "map", "values": "null"},
    record("int"), {"type": "fixed", "name": "One", "size": 1},
])
def test_arrays_whose_items_take_a_byte_pass(items: Any) -> None:
    vet_writer_schema(record({"type": "array", "items": items}))


def test_a_recursive_type_passes() -> None:
    node = {"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"]},
        {"name": "children", "type": {"type": "array", "items": "Node"}}]}
    vet_writer_schema(node)


def test_nesting_beyond_the_limit_is_refused() -> None:
    schema: Any = "long"
    for _ in range(MAX_DEPTH + 1):
        schema = {"type": "array", "items": schema}
    with pytest.raises(SchemaRefused, match="nested"):
        vet_writer_schema(schema)
