"""The ``dharma`` command line: one typer app, one module per command group."""

from __future__ import annotations

from importlib import import_module

import typer

app = typer.Typer(
    name="dharma", no_args_is_help=True, pretty_exceptions_show_locals=False,
    help="Dharma Streams: stream processing for infrastructure operations.",
)

#: Modules under ``dharma.cli`` that add commands through ``register(app)``.
COMMAND_MODULES = (
    "stack", "schemas", "worker", "tail", "generate", "up", "bench", "detect", "policy", "alerts",
    "dlq", "cmdb", "incidents", "remediation", "playbook", "cost", "api",
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        import_module(f"dharma.cli.{name}").register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
