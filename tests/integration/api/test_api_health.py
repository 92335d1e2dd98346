"""The API process serves its health check without a token, and nothing else."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_health_answers_without_a_token(api: httpx.Client) -> None:
    assert api.get("/api/health").json() == {"status": "ok"}


def test_openapi_document_is_served(api: httpx.Client) -> None:
    document = api.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
