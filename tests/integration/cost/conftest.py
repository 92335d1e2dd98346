"""Fixtures of the cost flow tests."""

from __future__ import annotations

import sys
from pathlib import Path

# the servers a test stops and starts are the trust flow tests' (``trust_servers``)
sys.path.insert(0, str(Path(__file__).parents[1] / "trust"))
