"""Embedded Confluent-compatible schema registry, persisted in PostgreSQL.

Run it with ``python -m dharma.infra.registry --host 127.0.0.1 --port 8081
--dsn postgresql://...``. Production uses a real Confluent registry; this one
serves the REST subset ``confluent_kafka``'s client and Avro serdes use, and
decides compatibility with Apache ``avro``'s checker.
"""

from __future__ import annotations

from dharma.infra.registry.app import build_app
from dharma.infra.registry.compat import DEFAULT_LEVEL, CompatResult, Level, check
from dharma.infra.registry.errors import RegistryError
from dharma.infra.registry.server import serve
from dharma.infra.registry.store import RegistryStore

__all__ = [
    "DEFAULT_LEVEL",
    "CompatResult",
    "Level",
    "RegistryError",
    "RegistryStore",
    "build_app",
    "check",
    "serve",
]
