"""Every endpoint of the OpenAPI document answers 401 without a token and serves an
admin token issued with MFA; the document itself is valid OpenAPI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from endpoints import api_operations, sample_path
from openapi_spec_validator import validate

from dharma.api.app import create_app
from dharma.streams.settings import Settings

pytestmark = pytest.mark.integration

#: Collected without the session's stack: the document does not depend on it.
OPERATIONS = api_operations(Settings())


def test_the_served_document_is_valid_openapi(api: httpx.Client, settings: Any,
                                              admin_headers: dict[str, str]) -> None:
    served = api.get("/api/v1/openapi.json", headers=admin_headers).json()
    validate(served)
    assert served == create_app(settings).openapi()
    assert {path for path, _ in OPERATIONS} <= set(served["paths"])


def _get(api: httpx.Client, url: str, headers: dict[str, str] | None = None
         ) -> httpx.Response:
    """The answer's status and head only (a live stream never ends)."""
    with api.stream("GET", url, headers=headers) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
        return response


@pytest.mark.parametrize(("path", "operation"), OPERATIONS, ids=[p for p, _ in OPERATIONS])
def test_every_endpoint_refuses_a_request_without_a_token(
        api: httpx.Client, path: str, operation: dict[str, Any]) -> None:
    response = _get(api, sample_path(path, operation))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("path", "operation"), OPERATIONS, ids=[p for p, _ in OPERATIONS])
def test_every_endpoint_serves_an_admin_token_issued_with_mfa(
        api: httpx.Client, admin_headers: dict[str, str], path: str,
        operation: dict[str, Any]) -> None:
    response = _get(api, sample_path(path, operation), admin_headers)
    assert response.status_code not in (401, 403, 429), response.text
    assert response.status_code < 500, response.text


def test_the_health_check_alone_answers_without_a_token(api: httpx.Client) -> None:
    assert api.get("/api/health").status_code == 200
