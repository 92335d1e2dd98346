"""CLI: ``python -m dharma.infra.registry --host H --port P --dsn DSN``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from dharma.infra.registry.server import serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (the DSN may also come from ``DHARMA_REGISTRY_DSN``)."""
    parser = argparse.ArgumentParser(
        prog="python -m dharma.infra.registry",
        description="Embedded Confluent-compatible schema registry persisted in PostgreSQL.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8081, help="port to bind (default 8081)")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("DHARMA_REGISTRY_DSN"),
        help="PostgreSQL DSN (env DHARMA_REGISTRY_DSN)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("--dsn (or DHARMA_REGISTRY_DSN) is required")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the registry until SIGTERM/SIGINT; exit code 0 on a clean stop."""
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    asyncio.run(serve(args.host, args.port, args.dsn, access_log=args.access_log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
