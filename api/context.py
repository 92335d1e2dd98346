"""What the API process holds open: settings and the stores it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from dharma.streams.settings import Settings

__all__ = ["ApiContext", "context_of"]


@dataclass
class ApiContext:
    """The process's shared state, opened by the app's lifespan and closed with it.

    Route modules keep what they open in ``resources`` under their own name.
    """

    settings: Settings
    resources: dict[str, Any] = field(default_factory=dict)


def context_of(request: Request) -> ApiContext:
    """The context of the app serving ``request`` (a FastAPI dependency)."""
    context: ApiContext = request.app.state.context
    return context
