"""Bolt replies without a 40 ms stall: acknowledge what the graph server sends at once.

FalkorDB's Bolt server (4.16) writes a reply in 4 KiB pieces and leaves Nagle's
algorithm on, so the second piece waits for the client to acknowledge the first,
and Linux delays that acknowledgement by up to 40 ms: every reply over 4 KiB
(a blast-radius level of a few hundred assets) took 45 ms instead of 2.
:func:`install` makes the neo4j driver's sockets ask the kernel for an immediate
acknowledgement (``TCP_QUICKACK``, which the kernel drops again after a while)
before each read.  It costs one ``setsockopt`` per read and changes nothing else;
Neo4j's server is not affected either way.

The hook is neo4j's ``BoltSocketBase.recv_into`` (its sync driver's only read path;
the version is pinned in ``constraints.txt``).  Where that, or ``TCP_QUICKACK``
(Linux only), is missing, :func:`install` leaves the driver as it is and says so.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["install", "installed"]

_MARK = "_dharma_quickack"


def _socket_class() -> Any:
    from neo4j._async_compat.network import _bolt_socket  # the sync driver's sockets

    return getattr(_bolt_socket, "BoltSocketBase", None)


def installed() -> bool:
    """Whether the driver's reads acknowledge at once."""
    cls = _socket_class()
    return cls is not None and getattr(cls.recv_into, _MARK, False)


def install() -> bool:
    """Make every Bolt read acknowledge at once (idempotent); whether it could."""
    cls = _socket_class()
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if cls is None or quickack is None or not hasattr(cls, "recv_into"):
        logger.warning("Bolt replies over 4 KiB from FalkorDB may wait 40 ms: "
                       "no TCP_QUICKACK or no neo4j socket hook here")
        return False
    if installed():
        return True
    read = cls.recv_into

    @functools.wraps(read)
    def recv_into(self: Any, buffer: Any, nbytes: int) -> Any:
        raw = getattr(self, "_socket", None)
        if raw is not None:
            with contextlib.suppress(OSError):  # a closed socket: the read below reports it
                raw.setsockopt(socket.IPPROTO_TCP, quickack, 1)
        return read(self, buffer, nbytes)

    setattr(recv_into, _MARK, True)
    cls.recv_into = recv_into
    return True
