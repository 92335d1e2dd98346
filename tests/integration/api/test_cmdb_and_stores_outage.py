"""A store that goes away: every read endpoint answers 503 with the reason, never a 500
and never a hang, and answers again once the store is back.

PostgreSQL is one of the test's own (stopped and started again); the graph is a port
nothing listens on.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from dharma.api.server import ApiServer

sys.path.insert(0, str(Path(__file__).parents[1] / "trust"))
from trust_servers import own_postgres  # a helper of the trust tests

pytestmark = pytest.mark.integration

POSTGRES_READS = ("/api/v1/incidents", "/api/v1/incidents/inc-x", "/api/v1/decisions",
                  "/api/v1/decisions/summary", "/api/v1/cost/teams", "/api/v1/cost/forecasts",
                  "/api/v1/cost/budgets",
                  # now's recommendations are kept a minute: one at a time of its own
                  "/api/v1/cost/recommendations?at=1930867200000")
GRAPH_READS = ("/api/v1/cmdb/assets", "/api/v1/cmdb/assets/db-1",
               "/api/v1/cmdb/assets/db-1/blast-radius", "/api/v1/cmdb/assets/db-1/history")
TOKEN = {"Authorization": "Bearer test"}


def test_stores_away_answer_503_and_recover(settings: Any, pick_port: Any, poll: Any) -> None:
    import httpx

    with own_postgres(pick_port()) as pg:
        own = settings.model_copy(deep=True)
        own.postgres.dsn = type(own.postgres.dsn)(pg.url)
        own.graph.uri = f"falkordb://127.0.0.1:{pick_port()}/cmdb"
        server = ApiServer(own, host="127.0.0.1", port=0).start()
        try:
            with httpx.Client(base_url=server.url, headers=TOKEN, timeout=60) as client:
                assert [client.get(p).status_code for p in POSTGRES_READS] == [
                    200, 404, 200, 200, 200, 200, 200, 200]
                for path in GRAPH_READS:
                    answer = client.get(path)
                    assert answer.status_code == 503, (path, answer.text)
                    assert answer.json()["detail"].startswith("store unavailable: ")
                pg.stop()
                for path in POSTGRES_READS:
                    answer = client.get(path)
                    assert answer.status_code == 503, (path, answer.text)
                    assert "store unavailable" in answer.json()["detail"]
                    assert answer.headers["retry-after"] == "5"
                pg.start()
                poll(lambda: client.get("/api/v1/incidents").status_code == 200,
                     "incidents answered again once PostgreSQL is back", timeout=60)
                assert [client.get(p).status_code for p in POSTGRES_READS] == [
                    200, 404, 200, 200, 200, 200, 200, 200]
        finally:
            server.stop()
