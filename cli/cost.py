"""``dharma cost``: reports, forecasts, budgets, recommendations and real bills.

Each subcommand lives in a ``cost_*`` module of this package that adds itself to
:data:`cost_app` through ``register(cost_app)``.
"""

from __future__ import annotations

from importlib import import_module

import typer

__all__ = ["cost_app", "register"]

cost_app = typer.Typer(help="Cost: report, forecast, budgets, recommendations, bills.",
                       no_args_is_help=True)

#: Modules under ``dharma.cli`` that add ``dharma cost`` subcommands.
COST_MODULES: tuple[str, ...] = ("cost_report", "cost_budget", "cost_forecast",
                                 "cost_recommend", "cost_bills")


def register(app: typer.Typer) -> None:
    """Add ``dharma cost`` to ``app``."""
    for name in COST_MODULES:
        import_module(f"dharma.cli.{name}").register(cost_app)
    app.add_typer(cost_app, name="cost")
