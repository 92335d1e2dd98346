"""A blast-radius level starts from its frontier, found through the ``Asset.id`` index:
it never scans every asset (which made a level of a 10,000-asset estate take seconds).
The plans are FalkorDB's, the embedded graph's."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pytest
from falkordb import FalkorDB

from dharma.sinks.cmdb import impact_level
from dharma.topologies.capabilities import graph as cmdb_graph

pytestmark = pytest.mark.integration


async def _ensure_index(settings: Any) -> None:
    """The index the CMDB's sink creates when it starts."""
    store = cmdb_graph(settings)
    try:
        await store.ensure_index()
    finally:
        await store.close()


@pytest.mark.parametrize("at", [None, 1_700_000_000_000])
def test_a_blast_radius_level_never_scans_every_asset(settings: Any, at: int | None) -> None:
    asyncio.run(_ensure_index(settings))
    uri = urlsplit(settings.graph.uri)
    graph = FalkorDB(host=uri.hostname, port=uri.port).select_graph(uri.path.strip("/"))
    plan = str(graph.explain(impact_level(at), {"frontier": ["db-1", "db-2"], "at": at}))
    assert "Node By Index Scan" in plan, plan
    assert "Label Scan" not in plan and "All Node Scan" not in plan, plan
