"""Zero-trust access decisions: trust scoring, user behaviour, policy engine.

See :mod:`dharma.agents.trust.logic` for the pure API and ``docs/trust.md``
for the rules.
"""

from __future__ import annotations

from dharma.agents.trust.logic import *  # noqa: F403
from dharma.agents.trust.logic import __all__ as __all__
