"""The aiohttp application: routes plus Confluent-shaped error bodies."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from dharma.infra.registry import handlers_schemas, handlers_subjects
from dharma.infra.registry.errors import RegistryError
from dharma.infra.registry.httputil import STORE, reply
from dharma.infra.registry.store import RegistryStore

log = logging.getLogger(__name__)


@web.middleware
async def confluent_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure as ``{"error_code": N, "message": "..."}``."""
    try:
        return await handler(request)
    except RegistryError as exc:
        log.debug("refused method=%s path=%s code=%s", request.method, request.path, exc.code)
        return reply({"error_code": exc.code, "message": exc.message}, status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return reply({"error_code": exc.status, "message": exc.reason}, status=exc.status)
    except Exception:
        log.exception("internal error method=%s path=%s", request.method, request.path)
        return reply({"error_code": 50001, "message": "Error in the backend data store"}, 500)


def build_app(store: RegistryStore) -> web.Application:
    """An application serving the Confluent REST subset from ``store``."""
    app = web.Application(middlewares=[confluent_errors])
    app[STORE] = store
    app.add_routes(handlers_subjects.routes)
    app.add_routes(handlers_schemas.routes)
    return app
