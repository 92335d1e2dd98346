"""The embedded graph server survives large writes and wide traversals.

FalkorDB's Bolt server dies (and Redis with it) on a request of about 4 KiB: a
batch of a few dozen asset rows, or a blast-radius level a few hundred assets wide,
used to take it down.  Requests now go in chunks under the limit, and one item too
large for any request is refused before it is sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dharma.agents.cmdb.logic import Change, project_histories
from dharma.agents.cmdb.state import graph_rows
from dharma.sinks.cmdb import Cmdb
from dharma.sinks.graph import BoltGraph, GraphSink, MessageTooLarge
from dharma.topologies.capabilities import graph

pytestmark = pytest.mark.integration

WIDE = 300


@pytest.fixture
def bolt(settings: Any) -> Iterator[BoltGraph]:
    g = graph(settings)
    yield g
    g.close_sync()


def _asset(prefix: str, name: str) -> Change:
    return Change(f"{prefix}a-{name}", 1_000, "asset", f"{prefix}{name}", "created", {
        "asset_type": "app", "name": f"{prefix}{name}", "provider": "aws",
        "region": "us-east-1", "team": "payments", "env": "prod",
        "instance_type": "m5.large", "hourly_cost": 0.096})


def _edge(prefix: str, source: str, target: str) -> Change:
    return Change(f"{prefix}d-{source}-{target}", 1_000, "dependency", f"{prefix}{source}",
                  "added", {"target_id": f"{prefix}{target}", "relation": "DEPENDS_ON"})


def _wide_estate(prefix: str) -> list[Change]:
    """``root`` <- ``WIDE`` middles <- one top each: levels far wider than 4 KiB of ids."""
    names = ["root", *(f"mid-{i}" for i in range(WIDE)), *(f"top-{i}" for i in range(WIDE))]
    return ([_asset(prefix, n) for n in names]
            + [_edge(prefix, f"mid-{i}", "root") for i in range(WIDE)]
            + [_edge(prefix, f"top-{i}", f"mid-{i}") for i in range(WIDE)])


async def _write(bolt: BoltGraph, changes: list[Change]) -> None:
    assets, edges = project_histories({c.key: [c] for c in changes})
    await GraphSink(bolt).write([graph_rows(assets, edges)])  # one batch, as the agent's


def test_a_large_batch_and_a_wide_blast_radius_leave_the_server_up(bolt: BoltGraph) -> None:
    prefix = f"wide-{uuid.uuid4().hex}-"
    asyncio.run(_write(bolt, _wide_estate(prefix)))
    count = bolt.query_sync("MATCH (a:Asset) WHERE a.id STARTS WITH $p RETURN count(a) AS n",
                            p=prefix)
    assert count == [{"n": 1 + 2 * WIDE}]
    radius = asyncio.run(Cmdb(bolt).blast_radius(f"{prefix}root", depth=5))
    depths = sorted(i.depth for i in radius.impacted)
    assert depths == [1] * WIDE + [2] * WIDE


def test_an_item_too_large_for_a_request_is_refused_not_sent(bolt: BoltGraph) -> None:
    with pytest.raises(MessageTooLarge):
        bolt.query_sync("RETURN size($s) AS n", s="x" * 5_000)
    with pytest.raises(MessageTooLarge):
        bolt.query_chunks_sync("UNWIND $rows AS r RETURN count(r) AS n", "rows",
                               ["small", "y" * 5_000])
    assert bolt.query_sync("RETURN 1 AS up") == [{"up": 1}]  # the server is still there
