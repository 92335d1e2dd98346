"""Fixtures of the sink outage tests (helpers: ``sink_helpers``).

The servers a test stops and starts are the trust flow tests' (``trust_servers``);
their directory is put on ``sys.path`` the way pytest puts a test's own there.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "trust"))


@pytest.fixture
def tag() -> str:
    """A fresh tag for the test's names."""
    return uuid.uuid4().hex[:8]
