"""Helpers shared by the CLI commands: settings, logging, consoles."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

from dharma.streams.settings import Settings

console = Console()
err_console = Console(stderr=True)


def load_settings() -> Settings:
    """Settings from the environment (read once, at the entry point)."""
    return Settings()


def setup_logging(level: str = "WARNING") -> None:
    """Log key=value lines to stderr through rich."""
    logging.basicConfig(
        level=level.upper(), format="%(name)s %(message)s", datefmt="%H:%M:%S",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=True)],
        force=True,
    )
