"""The webhook executor: remediation requests on ``infrastructure.events`` run through an
HTTP webhook (StackStorm, Rundeck, AWX), at most once per remediation id, and reported
``started`` / ``succeeded`` / ``failed`` on the same topic."""

from dharma.agents.executor.logic import ACTIONS, Request, payload, report, to_request

__all__ = ["ACTIONS", "Request", "payload", "report", "to_request"]
