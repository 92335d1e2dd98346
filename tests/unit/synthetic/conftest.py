"""Fixtures for the synthetic source tests."""

from __future__ import annotations

from typing import Any

import pytest
from synthetic_support import all_schemas


@pytest.fixture(scope="session")
def schemas() -> dict[str, Any]:
    """Parsed value schemas by topic."""
    return all_schemas()
