"""The API served on a thread of the test process, against the session's stack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from dharma.api.server import ApiServer


@pytest.fixture(scope="module")
def api_server(settings: Any) -> Iterator[ApiServer]:
    """One API server per test module, on a free port."""
    server = ApiServer(settings, host="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(api_server: ApiServer) -> Iterator[httpx.Client]:
    """An HTTP client of the module's API server (no token)."""
    with httpx.Client(base_url=api_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def reader(api_server: ApiServer) -> Iterator[httpx.Client]:
    """A client of the module's API server holding a token that may read every endpoint."""
    with httpx.Client(base_url=api_server.url, timeout=30,
                      headers={"Authorization": "Bearer test"}) as client:
        yield client


def walk_pages(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list endpoint, following ``next`` from the first page."""
    items: list[dict[str, Any]] = []
    while True:
        answer = client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        items += answer.json()["items"]
        if answer.json()["next"] is None:
            return items
        params["cursor"] = answer.json()["next"]


@pytest.fixture(scope="session")
def walk() -> Callable[..., list[dict[str, Any]]]:
    """:func:`walk_pages`: ``walk(client, path, **params)``."""
    return walk_pages


@pytest.fixture(scope="module")
def admin_headers() -> dict[str, str]:
    """The header of an admin token (placeholder until the access slice issues real ones)."""
    return {"Authorization": "Bearer test-admin"}
