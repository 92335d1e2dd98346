"""The numpydoc examples of the trust modules run as doctests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["models", "scoring", "behaviour", "session", "logic", "networks"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"dharma.agents.trust.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
