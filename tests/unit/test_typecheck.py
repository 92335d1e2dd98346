"""mypy reads ``dharma.*`` as our sources, not as ``Any``.

mypy follows neither the editable install's import hook nor setuptools'
package-dir, and with ``ignore_missing_imports`` an import it cannot find is
silently ``Any``: every call into our packages would go unchecked.
``typecheck/dharma/`` maps the import names to the folders (``pyproject.toml``,
``[tool.mypy]``); these tests fail when a package has no link or when mypy, run
as ``make lint`` runs it, no longer sees a type error behind an import.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SHIM = ROOT / "typecheck"

#: One wrong return type behind an import of our package, one behind a test helper
#: (``tests`` is on sys.path under pytest, and on mypy_path).
SNIPPET = '''\
from pathlib import Path

from hostile import exec_pickle

from dharma.streams.records import MetricSample


def source_length(sample: MetricSample) -> int:
    return sample.source


def marker_count() -> int:
    return exec_pickle(Path("marker"))
'''


def test_every_package_dir_has_its_link_and_nothing_else_does() -> None:
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    links = {".".join(p.relative_to(SHIM).parts): p for p in (SHIM / "dharma").iterdir()}
    assert set(links) == set(mapping)
    for name, folder in mapping.items():
        assert links[name].is_symlink(), f"{links[name]} must be a link, not a copy"
        assert links[name].resolve() == (ROOT / folder).resolve(), name


def test_make_lint_checks_the_packages_through_the_links() -> None:
    typed = re.search(r"^TYPED := (.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert typed is not None
    roots = set(PYPROJECT["tool"]["setuptools"]["package-dir"].values())
    assert "typecheck/dharma" in typed[1].split()
    assert not roots & set(typed[1].split()), "a package named by folder is read twice"


def test_mypy_reports_a_type_error_behind_an_import_of_dharma(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml",
         "--cache-dir", str(tmp_path / "cache"), str(snippet)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert [re.sub(r"^.*?snippet\.py:", "", e) for e in errors] == [
        '9: error: Incompatible return value type (got "str", expected "int")  [return-value]',
        '13: error: Incompatible return value type (got "bytes", expected "int")  [return-value]',
    ], run.stdout + run.stderr
