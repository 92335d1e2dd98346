"""Data-only YAML sets: every ``*.yaml``/``*.yml`` file of a directory, or one file.

Policy and playbook sets are read the same way: files in name order (so the
order is the author's), ``yaml.safe_load`` only (whoever writes the file never
runs code), every failure (no file, not UTF-8, not YAML) raised as the caller's own
error type with the file named.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["read_yaml_documents"]


def read_yaml_documents(path: Path, error: Callable[[list[str]], Exception],
                        what: str) -> tuple[list[Any], list[str]]:
    """The parsed documents of a YAML file or directory and the files' names.

    ``error`` builds the exception raised (with a list of problems) when there
    is no file or one does not parse; ``what`` names the files in that message.
    """
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"})
    if not files:
        raise error([f"no {what} files in {path}"])
    docs = []
    for file in files:
        try:
            docs.append(yaml.safe_load(file.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise error([f"{file.name}: {exc}"]) from exc
    return docs, [file.name for file in files]
