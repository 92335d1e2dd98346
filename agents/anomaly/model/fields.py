"""Plain-data state of the model parts: how it is written, and read back validated.

Each part of the detector writes what it has learned as a dict of plain values
(``to_state``) and reads it back into an instance built from the worker's
configuration (``load_state`` / ``from_state``), checking every field with a
:class:`Fields` reader: its type, its range, and the length of its arrays
against that configuration. A state holds ints, floats, ``None``, nested dicts,
lists of floats and float32 arrays as little-endian bytes (:func:`f32_bytes`);
never a class name or anything callable. Any problem raises
:class:`~dharma.streams.errors.BrokenCheckpoint`.

>>> r = Fields({"n": 3, "xs": f32_bytes(array("f", [1.0, 2.0]))}, "part")
>>> r.integer("n", hi=10), list(r.f32("xs", 2))
(3, [1.0, 2.0])
>>> r.done()
>>> Fields({"n": -1}, "part").integer("n")
Traceback (most recent call last):
...
dharma.streams.errors.BrokenCheckpoint: invalid: part.n: -1 outside [0, 9223372036854775807]
"""

from __future__ import annotations

import math
import sys
from array import array
from typing import Any

from dharma.streams.errors import BrokenCheckpoint

__all__ = ["INT64_MAX", "INT64_MIN", "Fields", "f32_bytes"]

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
_BIG_ENDIAN = sys.byteorder == "big"


def f32_bytes(values: array[float]) -> bytes:
    """``values`` (an ``array('f')``) as little-endian float32 bytes."""
    if not _BIG_ENDIAN:
        return values.tobytes()
    swapped = array("f", values)
    swapped.byteswap()
    return swapped.tobytes()


class Fields:
    """Validating reader of one part's state dict.

    Each read names a field and says what it may hold. :meth:`done` then
    refuses fields nobody read, in this part and in the parts read from it, so
    a state of a layout this code does not know is rejected, not half read.
    """

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise BrokenCheckpoint("invalid", f"{where}: {type(data).__name__}, not a map")
        self._data: dict[Any, Any] = data
        self._where = where
        self._read: set[str] = set()
        self._parts: list[Fields] = []

    def error(self, name: str, what: str) -> BrokenCheckpoint:
        """The error for field ``name`` (for checks a part makes itself)."""
        return BrokenCheckpoint("invalid", f"{self._where}.{name}: {what}")

    def _get(self, name: str) -> Any:
        if name not in self._data:
            raise self.error(name, "missing")
        self._read.add(name)
        return self._data[name]

    def integer(self, name: str, lo: int = 0, hi: int = INT64_MAX) -> int:
        """An int in ``[lo, hi]`` (not a bool)."""
        return self._integer(name, self._get(name), lo, hi)

    def opt_integer(self, name: str, lo: int = 0, hi: int = INT64_MAX) -> int | None:
        """``None`` or an int in ``[lo, hi]``."""
        v = self._get(name)
        return None if v is None else self._integer(name, v, lo, hi)

    def _integer(self, name: str, v: Any, lo: int, hi: int) -> int:
        if type(v) is not int:
            raise self.error(name, f"{type(v).__name__}, not an int")
        if not lo <= v <= hi:
            raise self.error(name, f"{v} outside [{lo}, {hi}]")
        return v

    def number(self, name: str, lo: float = -math.inf, hi: float = math.inf,
               finite: bool = True) -> float:
        """A float (an int is read as one) in ``[lo, hi]``; never NaN, infinite only
        when ``finite`` is false."""
        return self._number(name, self._get(name), lo, hi, finite)

    def opt_number(self, name: str, lo: float = -math.inf, hi: float = math.inf) -> float | None:
        """``None`` or a finite float in ``[lo, hi]``."""
        v = self._get(name)
        return None if v is None else self._number(name, v, lo, hi, True)

    def _number(self, name: str, v: Any, lo: float, hi: float, finite: bool) -> float:
        if type(v) is int:
            v = float(v)
        elif type(v) is not float:
            raise self.error(name, f"{type(v).__name__}, not a number")
        if v != v or (finite and not math.isfinite(v)):
            raise self.error(name, f"{v}, not a finite number" if finite else "NaN")
        if not lo <= v <= hi:
            raise self.error(name, f"{v} outside [{lo}, {hi}]")
        return v

    def span(self, lo_name: str, hi_name: str) -> tuple[float, float]:
        """A range seen so far: finite ``lo <= hi``, or ``(inf, -inf)`` before any value."""
        lo = self.number(lo_name, finite=False)
        hi = self.number(hi_name, finite=False)
        empty = lo == math.inf and hi == -math.inf
        if not empty and not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise self.error(f"{lo_name}/{hi_name}", f"[{lo}, {hi}] is not a range")
        return lo, hi

    def numbers(self, name: str, max_len: int, min_len: int = 0, lo: float = -math.inf,
                hi: float = math.inf, finite: bool = True) -> list[float]:
        """A list of ``min_len`` to ``max_len`` floats in ``[lo, hi]``, never NaN,
        infinite only when ``finite`` is false."""
        v = self._get(name)
        if not isinstance(v, list) or not min_len <= len(v) <= max_len:
            raise self.error(name, f"not a list of {min_len}..{max_len} numbers")
        return [self._number(f"{name}[{i}]", x, lo, hi, finite) for i, x in enumerate(v)]

    def text(self, name: str, max_len: int) -> str:
        """A string of at most ``max_len`` characters."""
        v = self._get(name)
        if type(v) is not str or len(v) > max_len:
            raise self.error(name, f"not a string of at most {max_len} characters")
        return v

    def f32(self, name: str, length: int, lo: float = -math.inf, hi: float = math.inf,
            nan: bool = False) -> array[float]:
        """A float32 array of exactly ``length`` finite values in ``[lo, hi]``
        (NaN allowed when ``nan``), from :func:`f32_bytes`."""
        v = self._get(name)
        if type(v) is not bytes or len(v) != 4 * length:
            raise self.error(name, f"not {length} packed float32 values")
        values = array("f")
        values.frombytes(v)
        if _BIG_ENDIAN:
            values.byteswap()
        seen = [x for x in values if x == x] if nan else values  # NaN != NaN
        if seen and not (lo <= min(seen) and max(seen) <= hi and all(map(math.isfinite, seen))):
            raise self.error(name, f"values outside [{lo}, {hi}], or not finite")
        return values

    def part(self, name: str) -> Fields:
        """The state of a nested part."""
        part = Fields(self._get(name), f"{self._where}.{name}")
        self._parts.append(part)
        return part

    def opt_part(self, name: str) -> Fields | None:
        """The state of a nested part that may be absent (``None``)."""
        return None if self._get(name) is None else self.part(name)

    def done(self) -> None:
        """Refuse fields that were not read, here and in the nested parts read."""
        unread = set(self._data) - self._read
        if unread:
            raise BrokenCheckpoint("invalid", f"{self._where}: unknown fields "
                                              f"{sorted(map(repr, unread))[:5]}")
        for part in self._parts:
            part.done()
