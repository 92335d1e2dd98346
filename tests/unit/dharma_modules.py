"""Every module the ``dharma-streams`` distribution ships, found from ``pyproject.toml``.

The top-level packages are the ``dharma.*`` keys of ``[tool.setuptools.package-dir]``
(a package added there is walked without editing this file); ``__main__`` modules
are left out, since importing one runs it.
"""

from __future__ import annotations

import importlib
import pkgutil
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def top_level_packages() -> list[str]:
    """``dharma.streams``, ``dharma.agents``...: as ``pyproject.toml`` maps them."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    return sorted(name for name in mapping if name.startswith("dharma."))


def shipped_modules() -> list[str]:
    """Dotted names of every package and module under :func:`top_level_packages`."""
    found: list[str] = []
    for top in top_level_packages():
        package = importlib.import_module(top)
        found.append(top)
        found += [info.name for info in pkgutil.walk_packages(package.__path__, f"{top}.")
                  if not info.name.endswith(".__main__")]
    return found
