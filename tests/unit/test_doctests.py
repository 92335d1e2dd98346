"""The doctest examples of every shipped module run in the suite.

How "a doctest file with no examples fails" is read here: the collection
itself must not be able to run nothing.  It fails when it finds no example
at all (a wrong package list, docstrings stripped by ``python -OO``, a finder
that skips everything), and when a module's source holds an example prompt
(``>>>`` at the start of a docstring line) that the finder does not collect
(an example doctest cannot reach, so it would never run).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import re
from functools import cache

import pytest
from dharma_modules import shipped_modules

PROMPT = re.compile(r"^\s*>>> ", re.MULTILINE)


@cache
def examples_by_module() -> dict[str, list[doctest.DocTest]]:
    """Each shipped module's doctests that hold at least one example."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    found: dict[str, list[doctest.DocTest]] = {}
    for name in shipped_modules():
        module = importlib.import_module(name)
        tests = [test for test in finder.find(module) if test.examples]
        found[name] = sorted(tests, key=lambda test: test.name)
    return found


def modules_with_examples() -> list[str]:
    return [name for name, tests in examples_by_module().items() if tests]


def test_the_collection_finds_examples() -> None:
    found = sum(len(test.examples) for tests in examples_by_module().values() for test in tests)
    assert len(modules_with_examples()) >= 10 and found >= 50, (
        f"doctest collection found {found} examples in {len(modules_with_examples())} "
        "modules: it is misconfigured (or docstrings are stripped) and would check nothing")


@pytest.mark.parametrize("name", modules_with_examples())
def test_module_doctests(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [v for v in os.environ if v.startswith("DHARMA_")]:
        monkeypatch.delenv(variable)  # examples show the defaults, not the test stack's
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in examples_by_module()[name]:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} doctest examples fail in {name}")


def test_every_example_prompt_in_a_module_is_collected() -> None:
    uncollected = [name for name, tests in examples_by_module().items()
                   if not tests and PROMPT.search(inspect.getsource(importlib.import_module(name)))]
    assert not uncollected, (
        f"modules with '>>> ' examples that doctest never collects (so never runs): {uncollected}")
