"""The API's endpoints, read from its OpenAPI document (so every route is covered)."""

from __future__ import annotations

import re
from typing import Any

from dharma.api.app import create_app

__all__ = ["api_operations", "sample_path"]

#: A value every path parameter accepts unless its schema says otherwise.
SAMPLE = "sample-1"


def api_operations(settings: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(path template, operation)`` of every GET under ``/api/v1``."""
    document = create_app(settings).openapi()
    return [(path, item["get"]) for path, item in sorted(document["paths"].items())
            if path.startswith("/api/v1/") and "get" in item]


def sample_path(path: str, operation: dict[str, Any], value: str | None = None) -> str:
    """``path`` with each ``{param}`` filled: ``value``, or a sample its schema accepts."""
    params = {p["name"]: p.get("schema", {}) for p in operation.get("parameters", ())
              if p["in"] == "path"}

    def fill(match: re.Match[str]) -> str:
        if value is not None:
            return value
        schema = params.get(match[1], {})
        return "1" if schema.get("type") == "integer" else SAMPLE

    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", fill, path)
