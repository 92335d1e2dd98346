"""What Faust's memory store knows of a recovered key, kept private by Faust.

The memory ``Store`` remembers, in ``_key_partition``, the changelog partition
each key was recovered from, to drop the keys of partitions the worker no
longer owns; Faust offers no public way to read it (no upstream issue found).
:class:`~dharma.streams.changelog.TableWriter` needs it so that the tombstone of
a dormant key goes to the partition the key came from.  Pinned by
``tests/unit/test_faust_contract.py``.
"""

from __future__ import annotations

from typing import Any


def recovered_partition(table: Any, key: bytes) -> int | None:
    """The changelog partition ``key`` of ``table`` was recovered from, if it was."""
    partitions = getattr(table.data, "_key_partition", {})
    found: int | None = partitions.get(key)
    return found
