"""Pure parts of the codec: schema handling without a registry.

Round trips through the wire format need a registry and live in
``tests/integration/test_codec_registry.py`` (nothing we ship against is faked).
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.schemas import contract_subjects, load_schema
from dharma.streams.codec import HEADER, MAGIC, strip_logical_types

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["logicalType", "type", "name", "x"]), inner, max_size=4),
    max_leaves=20,
)


def has_logical_type(schema: object) -> bool:
    if isinstance(schema, dict):
        return "logicalType" in schema or any(has_logical_type(v) for v in schema.values())
    if isinstance(schema, list):
        return any(has_logical_type(v) for v in schema)
    return False


def test_strip_removes_nested_logical_types_and_keeps_the_rest() -> None:
    schema: dict[str, Any] = {
        "type": "record", "name": "R", "fields": [
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "u", "type": ["null", {"type": "int", "logicalType": "date"}]},
            {"name": "a", "type": {"type": "array", "items": {
                "type": "string", "logicalType": "uuid"}}},
        ],
    }
    stripped = strip_logical_types(schema)
    assert stripped == {
        "type": "record", "name": "R", "fields": [
            {"name": "ts", "type": {"type": "long"}},
            {"name": "u", "type": ["null", {"type": "int"}]},
            {"name": "a", "type": {"type": "array", "items": {"type": "string"}}},
        ],
    }
    assert "logicalType" in schema["fields"][0]["type"]  # the input is not modified


@given(json_values)
def test_strip_is_idempotent_and_leaves_no_logical_type(value: object) -> None:
    once = strip_logical_types(value)
    assert not has_logical_type(once)
    assert strip_logical_types(once) == once
    if not has_logical_type(value):
        assert once == value


@pytest.mark.parametrize("subject", contract_subjects())
def test_stripped_contracts_still_parse(subject: str) -> None:
    fastavro.parse_schema(strip_logical_types(load_schema(subject)))


def test_stripped_timestamps_stay_epoch_millis() -> None:
    """With logical types stripped a ts is read back as the int it was, not a datetime."""
    schema = fastavro.parse_schema(strip_logical_types(load_schema("metrics.raw-value")))
    record = {"source": "s", "metric": "m", "value": 1.0, "ts": 1_700_000_000_123,
              "labels": {}, "unit": None}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, schema)
    assert isinstance(back, dict) and back == record
    assert type(back["ts"]) is int
    json.dumps(back)


def test_wire_header_layout() -> None:
    assert HEADER.size == 5
    assert HEADER.pack(MAGIC, 258) == b"\x00\x00\x00\x01\x02"
