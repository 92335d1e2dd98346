"""The trust engine's resource for an API request: ``api/v1/...``.

The concrete path when every segment is a valid resource segment (what the engine
accepts: starts with a letter, digit or underscore, then those and ``.-``, at most
128 characters, at most 16 segments), so a policy may name one asset or series;
otherwise the route's template with each ``{param}`` replaced by the parameter's
name, so a hostile path value is never what a decision is about.
"""

from __future__ import annotations

import re

__all__ = ["API_PREFIX", "is_resource", "request_resource"]

#: Where :func:`~dharma.api.app.create_app` mounts every route module.
API_PREFIX = "/api/v1"

_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}"
_RESOURCE = re.compile(rf"{_SEGMENT}(/{_SEGMENT}){{0,15}}")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


def is_resource(text: str) -> bool:
    """Whether the trust engine accepts ``text`` as a resource.

    >>> is_resource("api/v1/alerts"), is_resource("api/v1/../x"), is_resource("api//x")
    (True, False, False)
    """
    return len(text) <= 1024 and _RESOURCE.fullmatch(text) is not None


def request_resource(path: str, template: str) -> str:
    """The resource of a request for decoded ``path`` matched by route ``template``.

    >>> request_resource("/api/v1/cmdb/assets/db-1", "/api/v1/cmdb/assets/{asset_id}")
    'api/v1/cmdb/assets/db-1'
    >>> request_resource("/api/v1/cmdb/assets/' OR 1=1", "/api/v1/cmdb/assets/{asset_id}")
    'api/v1/cmdb/assets/asset_id'
    >>> request_resource("/api/v1/files/a/b/../c", "/api/v1/files/{rest:path}")
    'api/v1/files/rest'
    """
    concrete = path.removeprefix("/")
    if is_resource(concrete):
        return concrete
    return _PARAM.sub(lambda m: m[1], template).strip("/")
