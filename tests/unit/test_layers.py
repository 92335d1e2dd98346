"""The layers, enforced by the import-linter contracts in ``pyproject.toml``.

The tree keeps every contract; and each contract stops the inversions it exists
for: in a copy of the tree with one forbidden import added, ``lint-imports``
names exactly the contracts expected to break, the one written for that import
(and the independence of capabilities when the import lets one reach another).
Each contract is the only one some inversion breaks, so removing any of them
from the config lets an inversion back.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pyproject.toml"
PYPROJECT = tomllib.loads(CONFIG.read_text())
#: Top-level folders, each installed as ``dharma.<folder>``.
PACKAGES = list(PYPROJECT["tool"]["setuptools"]["package-dir"].values())
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = {c["name"]: c["id"] for c in PYPROJECT["tool"]["importlinter"]["contracts"]}
#: One line per contract: ``<name> KEPT`` or ``<name> BROKEN``, maybe ``(1 ignored import)``.
VERDICT = re.compile(r"^(.+) (KEPT|BROKEN)(?: \(.*\))?$", re.MULTILINE)

#: (module file, the import added to it, ids of the contracts it must break).  The first
#: three are the inversions the layers removed: the CLI in the kernel (through which one
#: capability also reaches the others), a capability type in a sink, one capability
#: reaching into another.
INVERSIONS = [
    ("streams/app.py", "import dharma.topologies", {"kernel", "capabilities"}),
    ("sinks/sessions.py", "from dharma.agents.trust.session import Session", {"sinks"}),
    ("agents/trust/logic.py", "import dharma.agents.validation.logic", {"capabilities"}),
    ("agents/validation/logic.py", "import dharma.synthetic", {"agents"}),
    ("topologies/__init__.py", "import dharma.synthetic", {"topologies"}),
    ("infra/stack/process.py", "import dharma.sinks.base", {"infra"}),
    ("synthetic/model.py", "import dharma.agents.validation.logic", {"synthetic"}),
    ("bench/harness.py", "import dharma.cli.common", {"top"}),
    ("streams/errors.py", "import dharma.synthetic", {"kernel"}),
    ("api/app.py", "import dharma.cli.common", {"api"}),
]


def broken_contracts(tree: Path) -> set[str]:
    """Ids of the contracts ``lint-imports`` reports broken for the ``dharma`` under
    ``tree`` (the installed one when ``tree`` is the repository)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)}
    done = subprocess.run([LINT_IMPORTS, str(CONFIG), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)
    verdicts = {m[1]: m[2] for m in VERDICT.finditer(done.stdout)}
    assert verdicts.keys() == CONTRACTS.keys(), done.stdout + done.stderr
    broken = {name for name, verdict in verdicts.items() if verdict == "BROKEN"}
    assert (done.returncode == 0) == (not broken), done.stdout
    return {CONTRACTS[name] for name in broken}


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The packages copied under ``<tmp>/dharma/``, as the install maps them."""
    tree = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / "dharma" / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    yield tree


def test_the_tree_keeps_every_contract() -> None:
    assert broken_contracts(ROOT) == set()


def test_the_copy_keeps_every_contract(tree_copy: Path) -> None:
    assert broken_contracts(tree_copy) == set()


@pytest.mark.parametrize(("module", "statement", "expected"), INVERSIONS,
                         ids=[f"{m}:{s.split()[1]}" for m, s, _ in INVERSIONS])
def test_an_inversion_breaks_its_contract(tree_copy: Path, module: str, statement: str,
                                          expected: set[str]) -> None:
    path = tree_copy / "dharma" / module
    original = path.read_text()
    path.write_text(f"{original}\n{statement}\n")
    try:
        assert broken_contracts(tree_copy) == expected
    finally:
        path.write_text(original)


def test_every_contract_alone_stops_an_inversion() -> None:
    alone = {contract for _, _, expected in INVERSIONS if len(expected) == 1
             for contract in expected}
    assert alone == set(CONTRACTS.values())
