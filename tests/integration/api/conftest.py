"""The API served on a thread of the test process, against the session's stack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from page_support import chromium_path
from playwright.sync_api import Browser, sync_playwright

from dharma.api.server import ApiServer
from dharma.sinks.api_tokens import create_token


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


@pytest.fixture(scope="module")
def issue(settings: Any) -> Callable[..., str]:
    """Factory of API tokens in the session's PostgreSQL: ``issue(*roles, mfa=True)``."""

    def make(*roles: str, user: str = "tester", mfa: bool = True,
             ttl: timedelta = timedelta(days=1)) -> str:
        return create_token(settings.postgres.dsn.get_secret_value(), user, roles, mfa=mfa,
                            ttl=ttl).token

    return make


@pytest.fixture(scope="module")
def admin_headers(issue: Callable[..., str]) -> dict[str, str]:
    """The header of an admin token issued with MFA (what ``dharma up`` and the page use)."""
    return {"Authorization": f"Bearer {issue('admin', user='admin')}"}


@pytest.fixture
def reader(api_server: ApiServer, admin_headers: dict[str, str]) -> Iterator[httpx.Client]:
    """A client of the module's API server holding a token that may read every endpoint."""
    with httpx.Client(base_url=api_server.url, timeout=30, headers=admin_headers) as client:
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
def browser() -> Iterator[Browser]:
    """Headless Debian chromium, driven by Playwright (one per test module)."""
    with sync_playwright() as playwright:
        # --no-sandbox: chromium's sandbox cannot start as root (CI containers)
        chromium = playwright.chromium.launch(executable_path=chromium_path(),
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()
