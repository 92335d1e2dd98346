"""Fixtures of the red-team tests: the trust flow tests' helpers and fixtures.

The attack tests reuse the trust integration helpers (the seed's request, readers
of the outputs, servers of a test's own); their directory is put on ``sys.path``
the way pytest puts a test's own directory there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "integration" / "trust"))

from trust_helpers import Outputs  # found through the path above


@pytest.fixture
def outputs(settings: Any) -> Iterator[Outputs]:
    """Trust decisions and alerts produced since the test began."""
    out = Outputs(settings)
    yield out
    out.close()
