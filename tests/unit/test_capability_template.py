"""Every capability follows one template (issue #12, items 2 and 3).

``agents/<capability>/`` holds ``agent.py`` (Faust wiring), ``logic.py`` (pure: the
batch step), ``state.py`` (tables); no capability imports another, none does its own
I/O to PostgreSQL, Redis or Kafka (sinks and the CLI do).  One alert shape for
every capability: ``tests/unit/trust/test_trust_alert_shape.py``.
"""

from __future__ import annotations

import ast
import doctest
import subprocess
import sys
from pathlib import Path

import pytest

from dharma.agents.anomaly import logic as anomaly_logic
from dharma.agents.cmdb import logic as cmdb_logic
from dharma.agents.validation import logic as validation_logic
from dharma.streams import alerting

ROOT = Path(__file__).resolve().parents[2]
CAPABILITIES = ["validation", "anomaly", "trust", "cmdb", "healing", "executor"]
#: The batch step each capability's logic exposes (the agent, replays and tests run it).
BATCH_STEPS = {"validation": "fold_batch", "anomaly": "BatchStep", "trust": "TrustStep",
               "cmdb": "project_histories", "healing": "decide",
               "executor": "reports"}
IO_CLIENTS = ("psycopg", "redis", "confluent_kafka", "neo4j", "aiokafka")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_capability_has_the_three_roles_and_a_batch_step(capability: str) -> None:
    package = ROOT / "agents" / capability
    for role in ("__init__.py", "agent.py", "logic.py", "state.py"):
        assert (package / role).is_file(), f"{capability} has no {role}"
    module = __import__(f"dharma.agents.{capability}.logic", fromlist=["_"])
    assert callable(getattr(module, BATCH_STEPS[capability]))


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_logic_is_pure(capability: str) -> None:
    """Importing a capability's logic loads neither Faust nor a store or broker client."""
    code = (f"import sys, dharma.agents.{capability}.logic; print(sorted({{m.split('.')[0] "
            f"for m in sys.modules}} & {{'faust', 'mode', *{IO_CLIENTS!r}}}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]", f"{capability}.logic loads {loaded}"


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_capability_imports_no_other_and_does_no_io_itself(capability: str) -> None:
    others = [c for c in CAPABILITIES if c != capability]
    for path in sorted((ROOT / "agents" / capability).rglob("*.py")):
        for name in _imports(path):
            assert not any(name.startswith(f"dharma.agents.{o}") for o in others), \
                f"{path.relative_to(ROOT)} imports {name}"
            assert name.split(".")[0] not in IO_CLIENTS, \
                f"{path.relative_to(ROOT)} imports {name}: I/O belongs in sinks/ or the CLI"


@pytest.mark.parametrize("module", [alerting, anomaly_logic, cmdb_logic, validation_logic])
def test_doctests(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0
