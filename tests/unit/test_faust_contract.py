"""Private Faust behaviour our code relies on: fails loudly if an upgrade changes it."""

from __future__ import annotations

import asyncio

import faust
from faust.types.tuples import Message

from dharma.streams.changelog import TableWriter


def test_the_memory_store_remembers_the_changelog_partition_of_a_recovered_key() -> None:
    """``TableWriter.recovered_partition`` reads ``Store._key_partition``: the tombstone of a
    dormant checkpoint must go to the partition its key was recovered from."""
    app = faust.App("t-contract", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    table = app.Table("t", default=None, key_type=bytes, value_type=bytes)

    async def recover() -> None:
        message = Message(table.changelog_topic_name, 7, 0, 0.0, 0, None, b'"k"', b"v", None)
        table.apply_changelog_batch([await table.changelog_topic.decode(message)])

    asyncio.run(recover())
    writer = TableWriter(table, emitter=None)  # type: ignore[arg-type]  # reads only
    assert table.data[b'"k"'] == b"v"
    assert writer.recovered_partition(b'"k"') == 7
    assert writer.recovered_partition(b'"other"') is None
