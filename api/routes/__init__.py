"""The API's routers, one module per area; each exposes ``router``."""

from __future__ import annotations

#: Modules under ``dharma.api.routes`` whose ``router`` is mounted under ``/api/v1``
#: behind :func:`dharma.api.auth.authorize`.
ROUTE_MODULES: tuple[str, ...] = ("alerts", "series", "pipeline", "live",
                                  "incidents", "decisions", "cmdb", "cost")
