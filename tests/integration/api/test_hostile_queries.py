"""Hostile query strings and path values on every route of the OpenAPI document get a
4xx, never a 5xx: injection-looking filters, NUL bytes, huge and negative numbers,
10 kB values, cursor garbage.  Sent with an admin token issued with MFA, so each
reaches the route's own validation (and, when it passes, its query)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from endpoints import api_operations, sample_path

from dharma.api.server import ApiServer
from dharma.streams.settings import Settings

pytestmark = pytest.mark.integration

OPERATIONS = api_operations(Settings())
HOSTILE = ["' OR 1=1 --", "%00", "\x00", "1; DROP TABLE access_audit; --", "-1", "-9" * 30,
           str(10**9), str(10**30), "1e309", "NaN", "x" * 10_240, "ÿ\ufffd", "../../etc/passwd",
           "{\"$gt\": \"\"}", "*", "%"]
@pytest.fixture(scope="module")
def hostile_api(settings: Any, admin_headers: dict[str, str]) -> Iterator[httpx.Client]:
    """An API whose rate limit the many requests below do not reach."""
    roomy = settings.model_copy(update={"api": settings.api.model_copy(
        update={"rate_limit": 1_000_000})})
    server = ApiServer(roomy, host="127.0.0.1", port=0).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60, headers=admin_headers) as client:
            yield client
    finally:
        server.stop()


def _status(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> int:
    with client.stream("GET", url, params=params) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
        return response.status_code


def _queries(operation: dict[str, Any]) -> list[str]:
    return [p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"]


@pytest.mark.parametrize(("path", "operation"), OPERATIONS, ids=[p for p, _ in OPERATIONS])
def test_hostile_query_strings_get_a_4xx_never_a_5xx(
        hostile_api: httpx.Client, path: str, operation: dict[str, Any]) -> None:
    """Any filter: never a 5xx (a free-text filter may match nothing: 200); a cursor
    that is garbage: a 4xx."""
    url, failures = sample_path(path, operation), []
    for name in [*_queries(operation), "unknown_filter"]:
        for value in HOSTILE:
            status = _status(hostile_api, url, {name: value})
            if status >= 500 or (name == "cursor" and not 400 <= status < 500):
                failures.append(f"GET {url}?{name}={value[:40]!r}: {status}")
    assert not failures, "\n".join(failures)


def test_hostile_path_values_get_a_4xx_never_a_5xx(hostile_api: httpx.Client) -> None:
    """Every route with a path parameter, with injection-looking, NUL, traversal and
    10 kB values: 404 or another 4xx (or 200 for a value that names nothing harmful)."""
    failures = []
    for path, operation in [(p, o) for p, o in OPERATIONS if "{" in p]:
        for value in ["' OR 1=1 --", "%00", "..", "x" * 10_240, "%2e%2e%2f%2e%2e", "ÿ"]:
            url = sample_path(path, operation, value)
            status = _status(hostile_api, url)
            if status >= 500 or status in (401, 403):
                failures.append(f"GET {url[:80]!r}: {status}")
    assert not failures, "\n".join(failures)


def test_a_page_larger_than_allowed_is_refused_on_every_paged_route(
        hostile_api: httpx.Client, settings: Any) -> None:
    paged = [(p, o) for p, o in OPERATIONS if "limit" in _queries(o)]
    for path, operation in paged:
        url = sample_path(path, operation)
        for limit in (settings.api.max_page + 1, 10**9, 0, -1):
            assert _status(hostile_api, url, {"limit": str(limit)}) == 422, (url, limit)
