"""Bolt requests the embedded graph server survives: exact encoded sizes, chunks under
the limit, an item too large refused; replies acknowledged at once."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from neo4j._codec.packstream.v1 import Packer  # the driver's own encoder, as the reference

from dharma.sinks import bolt_ack
from dharma.sinks.graph import MAX_MESSAGE_BYTES, MessageTooLarge, _chunks, encoded_size_bound

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=300))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=20)
                      | st.dictionaries(st.text(max_size=20), inner, max_size=20), max_leaves=60)


def packed(value: Any) -> int:
    out = io.BytesIO()
    Packer(out).pack(value)
    return len(out.getvalue())


@given(values)
def test_encoded_size_is_the_drivers_packstream_size(value: Any) -> None:
    assert encoded_size_bound(value) == packed(value)


@given(st.lists(st.dictionaries(st.text(max_size=12), scalars, max_size=8), max_size=200),
       st.integers(400, MAX_MESSAGE_BYTES))
def test_chunks_keep_order_and_stay_within_the_budget(rows: list[Any], budget: int) -> None:
    small = [r for r in rows if encoded_size_bound(r) <= budget]
    chunks = list(_chunks(small, budget))
    assert [r for chunk in chunks for r in chunk] == small
    assert all(chunk and sum(map(encoded_size_bound, chunk)) <= budget for chunk in chunks)


def test_an_item_larger_than_a_request_is_refused() -> None:
    with pytest.raises(MessageTooLarge):
        list(_chunks(["ok", "x" * MAX_MESSAGE_BYTES], MAX_MESSAGE_BYTES))


def test_bolt_reads_acknowledge_at_once_once_installed() -> None:
    assert bolt_ack.install()
    assert bolt_ack.install() and bolt_ack.installed()  # idempotent
