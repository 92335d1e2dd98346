"""Packaging layout: one import namespace, ``dharma``, and every package shipped.

Nothing generic (``agents``, ``streams``...) may land at the top of
site-packages, and a non-editable install (the Docker image) must contain every
folder that is a package, which means it must be listed in pyproject.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIST = "dharma-streams"
ROOTS = ("streams", "schemas", "agents", "sinks", "topologies", "infra", "bench", "cli",
         "synthetic", "api")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def installed_distribution() -> importlib.metadata.Distribution:
    """The installed distribution in site-packages (not a source-tree ``*.egg-info``)."""
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    found = list(importlib.metadata.distributions(name=DIST, path=site))
    assert found, f"{DIST} is not installed in {site[0]} (the test command installs it)"
    return found[0]


def top_level_import_names(dist: importlib.metadata.Distribution) -> set[str]:
    """Import names a distribution puts at the top of site-packages.

    Read from its RECORD; an editable install's finder module is replaced by the
    names it maps (setuptools' ``MAPPING`` and ``NAMESPACES``).
    """
    names: set[str] = set()
    for file in dist.files or ():
        first = file.parts[0]
        if first == ".." or first == "__pycache__" or first.endswith((".dist-info", ".pth")):
            continue
        stem = first.removesuffix(".py")
        if stem.startswith("__editable__") and stem.endswith("_finder"):
            finder = importlib.import_module(stem)
            mapped = [*finder.MAPPING, *finder.NAMESPACES]
            names |= {name.split(".")[0] for name in mapped}
        else:
            names.add(stem)
    return names


def test_only_dharma_is_installed_at_the_top_level() -> None:
    dist = installed_distribution()
    assert top_level_import_names(dist) == {"dharma"}
    top_level = dist.read_text("top_level.txt")
    if top_level is not None:
        assert top_level.split() == ["dharma"]


def test_package_dir_maps_each_root_under_dharma() -> None:
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert mapping == {f"dharma.{root}": root for root in ROOTS}


def source_packages() -> set[str]:
    found = set()
    for root in ROOTS:
        for init in (ROOT / root).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            found.add("dharma." + ".".join(rel.parts))
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    missing = source_packages() - listed
    assert not missing, f"add to [tool.setuptools] packages: {sorted(missing)}"


def test_every_listed_package_exists() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed <= source_packages(), sorted(listed - source_packages())


def test_package_data_covers_the_contracts() -> None:
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert "*.avsc" in data["dharma.schemas"]
    assert any((ROOT / "schemas").glob("*.avsc"))
