"""``dharma policy test`` and ``dharma policy validate`` through typer."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from typer.testing import CliRunner

from dharma.agents.trust import default_policy_dir
from dharma.cli.policy import register

HERE = Path(__file__).parent
CASES = HERE / "cases.yaml"
POLICIES = str(default_policy_dir())


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """dharma"""

    return app


def test_cases_pass() -> None:
    result = CliRunner().invoke(_app(), ["policy", "test", POLICIES, str(CASES)])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output
    assert "seed example" in result.output


def test_failing_case_exits_1(tmp_path: Path) -> None:
    cases = yaml.safe_load(CASES.read_text())
    cases["cases"] = [dict(cases["cases"][0], expect="DENY")]
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(cases))
    result = CliRunner().invoke(_app(), ["policy", "test", POLICIES, str(path)])
    assert result.exit_code == 1
    assert "FAIL" in result.output


def test_bad_cases_file_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text("cases: [{name: x}]\n")
    assert CliRunner().invoke(_app(), ["policy", "test", POLICIES, str(path)]).exit_code == 1


def test_validate_ok() -> None:
    result = CliRunner().invoke(_app(), ["policy", "validate", POLICIES])
    assert result.exit_code == 0, result.output
    assert "pol_001" in result.output and "valid" in result.output


def test_validate_bad(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies:\n  - {id: x, name: x, resource: 'a/../b', actions: [read]}\n"
    )
    result = CliRunner().invoke(_app(), ["policy", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "error" in result.output


def test_validate_names_a_file_that_lost_its_policies(tmp_path: Path) -> None:
    import shutil

    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    (policies / "90-forbid.yaml").write_text("")  # a deploy that truncated the file
    result = CliRunner().invoke(_app(), ["policy", "validate", str(policies)])
    assert result.exit_code == 1
    assert "90-forbid.yaml" in result.output and "empty" in result.output
