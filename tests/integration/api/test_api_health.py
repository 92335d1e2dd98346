"""The API process serves its health check without a token, and nothing else: not even
its OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_health_answers_without_a_token(api: httpx.Client) -> None:
    assert api.get("/api/health").json() == {"status": "ok"}


def test_the_openapi_document_needs_a_token_of_any_role(api: httpx.Client,
                                                       issue: Callable[..., str]) -> None:
    assert api.get("/api/v1/openapi.json").status_code == 401
    assert api.get("/api/docs").status_code == 404  # no Swagger UI (it loads from a CDN)
    viewer = {"Authorization": f"Bearer {issue('viewer', user='viewer')}"}
    document = api.get("/api/v1/openapi.json", headers=viewer).json()
    assert document["openapi"].startswith("3.")
