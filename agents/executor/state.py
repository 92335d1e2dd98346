"""Where the executor's state lives: the ``remediation_executions`` table
(:mod:`dharma.sinks.executions`), one claimed row per remediation id.  These read
its rows back as the capability's values."""

from __future__ import annotations

import logging

from dharma.agents.executor.logic import Request
from dharma.sinks.executions import Execution

__all__ = ["count_label", "stored_request"]

logger = logging.getLogger(__name__)


def stored_request(execution: Execution, in_hand: Request | None) -> Request:
    """The request as first claimed; the one in hand when the stored row is not a request
    (a row written by something else is data to check, never trusted)."""
    try:
        return Request.from_dict(execution.request)
    except (TypeError, ValueError):
        if in_hand is None:
            raise
        logger.error("remediation_executions row %s holds no readable request; reporting "
                     "from the request in hand", execution.remediation_id)
        return in_hand


def count_label(execution: Execution, new: bool) -> str:
    """How a request is counted: replayed (seen before), refused, expired or its outcome."""
    if not new:
        return "replayed"
    reason = execution.reason or ""
    for kind in ("refused", "expired"):
        if reason.startswith(kind):
            return kind
    return execution.outcome or "failed"
