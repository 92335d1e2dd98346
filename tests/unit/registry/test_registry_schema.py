"""Schema validation, canonical text and fingerprints."""

from __future__ import annotations

import doctest
import json

import pytest

from dharma.infra.registry import schema
from dharma.infra.registry.errors import RegistryError
from dharma.infra.registry.schema import prepare

DOC = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": 1}]}


def test_formatting_and_key_order_do_not_change_the_fingerprint() -> None:
    compact = prepare(json.dumps(DOC))
    pretty = prepare(json.dumps(DOC, indent=2, sort_keys=True))
    assert compact.fingerprint == pretty.fingerprint
    assert pretty.text != compact.text  # the submitted text is kept as is


def test_defaults_are_part_of_the_identity() -> None:
    other = {**DOC, "fields": [{"name": "a", "type": "int", "default": 2}]}
    assert prepare(json.dumps(DOC)).fingerprint != prepare(json.dumps(other)).fingerprint


@pytest.mark.parametrize(
    ("text", "schema_type", "references"),
    [
        ('{"type": "record"}', "AVRO", None),  # no name, no fields
        ("not json", "AVRO", None),
        ("", "AVRO", None),
        (json.dumps(DOC), "PROTOBUF", None),
        (json.dumps(DOC), "AVRO", [{"name": "x", "subject": "y", "version": 1}]),
    ],
)
def test_invalid_schemas_are_42201(text: str, schema_type: str, references: object) -> None:
    with pytest.raises(RegistryError) as info:
        prepare(text, schema_type, references)
    assert (info.value.status, info.value.code) == (422, 42201)


def test_every_contract_parses() -> None:
    from importlib import resources

    for entry in resources.files("dharma.schemas").iterdir():
        if entry.name.endswith(".avsc"):
            assert prepare(entry.read_text(encoding="utf-8")).fingerprint


def test_doctests() -> None:
    assert doctest.testmod(schema).failed == 0
