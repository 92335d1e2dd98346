"""Page cursors: any sort key comes back as it went; anything but the very cursor
issued for the very query, by this process, is a 400."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from dharma.api.queries import Cursors, epoch_ms

KEYS = st.lists(st.one_of(st.integers(-(2**62), 2**62), st.text(max_size=30),
                          st.floats(allow_nan=False, allow_infinity=False)), max_size=3)
CURSORS = Cursors(b"k" * 32)
Key = list[str | int | float]


def _refused(call: Callable[[], object]) -> int:
    with pytest.raises(HTTPException) as refused:
        call()
    return refused.value.status_code


def _bytes(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@given(scope=st.text(max_size=40), key=KEYS)
def test_a_cursor_gives_back_its_key(scope: str, key: Key) -> None:
    assert CURSORS.decode(scope, CURSORS.encode(scope, key)) == key


@given(scope=st.text(max_size=40), key=KEYS, position=st.integers(0, 10_000),
       flip=st.integers(1, 255))
def test_a_cursor_altered_anywhere_is_refused(scope: str, key: Key, position: int,
                                              flip: int) -> None:
    raw = bytearray(_bytes(CURSORS.encode(scope, key)))
    raw[position % len(raw)] ^= flip
    assert _refused(lambda: CURSORS.decode(scope, _text(bytes(raw)))) == 400


@given(scope=st.text(max_size=40), key=KEYS, other=st.text(max_size=40))
def test_a_cursor_of_another_query_or_process_is_refused(scope: str, key: Key,
                                                          other: str) -> None:
    cursor = CURSORS.encode(scope, key)
    if other != scope:
        assert _refused(lambda: CURSORS.decode(other, cursor)) == 400
    assert _refused(lambda: Cursors(b"j" * 32).decode(scope, cursor)) == 400


@given(st.text(max_size=60))
def test_any_other_text_is_refused(text: str) -> None:
    assert _refused(lambda: CURSORS.decode("q", text)) == 400


@pytest.mark.parametrize("text", ["253402300800000", "0001-01-01T00:00:00Z",
                                  "1969-12-31T23:59:59Z"])
def test_times_outside_1970_to_9999_are_422(text: str) -> None:
    assert _refused(lambda: epoch_ms(text, "since")) == 422
