"""``dharma api``: serve the read API and live page; manage its tokens.

Subcommands other than ``serve`` live in ``api_*`` modules of this package that add
themselves to :data:`api_app` through ``register(api_app)``.
"""

from __future__ import annotations

from importlib import import_module

import typer

from dharma.cli.common import console, load_settings, setup_logging

__all__ = ["api_app", "register"]

api_app = typer.Typer(help="The read API and live page: serve it, manage its tokens.",
                      no_args_is_help=True)

#: Modules under ``dharma.cli`` that add ``dharma api`` subcommands.
API_MODULES: tuple[str, ...] = ("api_token",)


@api_app.command("serve")
def serve(host: str = typer.Option(None, help="Address (default DHARMA_API_HOST)."),
          port: int = typer.Option(None, help="Port (default DHARMA_API_PORT)."),
          log_level: str = typer.Option("WARNING", help="Log level.")) -> None:
    """Serve the API and the live page until interrupted."""
    from dharma.api.server import ApiServer

    setup_logging(log_level)
    server = ApiServer(load_settings(), host=host, port=port)
    console.print(f"API and live page on http://{host or load_settings().api.host}:"
                  f"{port if port is not None else load_settings().api.port}/")
    server.run()


def register(app: typer.Typer) -> None:
    """Add ``dharma api`` to ``app``."""
    for name in API_MODULES:
        import_module(f"dharma.cli.{name}").register(api_app)
    app.add_typer(api_app, name="api")
