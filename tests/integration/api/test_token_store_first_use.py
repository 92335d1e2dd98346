"""The API's token store opens its pool once, however many requests arrive first at once
(50 live subscribers connecting to a fresh API process did: the racing opens broke the
pool, and every later request was a 503)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dharma.sinks.api_tokens import TokenStore

pytestmark = pytest.mark.integration


def test_concurrent_first_lookups_share_one_pool(settings: Any) -> None:
    async def first_lookups() -> list[Any]:
        store = TokenStore(settings.postgres.dsn.get_secret_value())
        try:
            return await asyncio.gather(*(store.lookup(f"{i:016x}") for i in range(20)),
                                        return_exceptions=True)
        finally:
            await store.close()

    found = asyncio.run(first_lookups())
    assert found == [None] * 20  # unknown tokens, and no lookup failed
