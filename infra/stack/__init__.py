"""The embedded stack: broker, registry, PostgreSQL, Redis and graph server on loopback."""

from dharma.infra.stack.manager import EmbeddedStack, ServiceStatus
from dharma.infra.stack.process import PortTakenError, StackError

__all__ = ["EmbeddedStack", "PortTakenError", "ServiceStatus", "StackError"]
