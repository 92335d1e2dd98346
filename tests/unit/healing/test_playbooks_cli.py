"""``dharma playbook list | show | test | validate`` through typer."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from dharma.agents.healing.cases import default_cases_file
from dharma.agents.healing.playbooks import default_playbook_dir
from dharma.cli.playbook import register

CASES = str(default_cases_file())
PLAYBOOKS = str(default_playbook_dir())


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """dharma"""

    return app


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["playbook", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_the_shipped_cases_pass_on_the_default_set() -> None:
    for args in ((CASES,), (PLAYBOOKS, CASES)):
        code, out = invoke("test", *args)
        assert code == 0, out
        assert "12 passed, 0 failed" in out and "seed example" in out


def test_a_failing_case_exits_1_and_says_why(tmp_path: Path) -> None:
    cases = yaml.safe_load(Path(CASES).read_text(encoding="utf-8"))
    cases["cases"] = [dict(cases["cases"][0], risk="HIGH")]
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(cases), encoding="utf-8")
    code, out = invoke("test", PLAYBOOKS, str(path))
    assert code == 1 and "FAIL" in out and "risk LOW != HIGH" in out


@pytest.mark.parametrize("text", ["cases: [{name: x}]\n",
                                  "cases: [{name: x, issue_type: leak, playbook: null}]\n"])
def test_a_bad_cases_file_exits_1(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(text, encoding="utf-8")
    code, out = invoke("test", str(path))
    assert code == 1 and "cannot read cases" in out


def test_test_takes_one_or_two_paths() -> None:
    assert invoke("test", PLAYBOOKS, PLAYBOOKS, CASES)[0] == 2


def test_the_worker_setting_chooses_the_set(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "only.yaml").write_text(
        (default_playbook_dir() / "99-notify.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("DHARMA_HEALING_PLAYBOOK_DIR", str(tmp_path))
    code, out = invoke("list")
    assert code == 0 and "notify-owner@1" in out and "restart-service" not in out
    assert invoke("test", CASES)[0] == 1


def test_list_and_validate_show_the_set() -> None:
    for command in ("list", "validate"):
        code, out = invoke(command, PLAYBOOKS)
        assert code == 0, out
        assert "restart-service@1" in out and "8 playbooks" in out
    assert "valid" in invoke("validate")[1]


def test_validate_reports_every_error(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "playbooks:\n  - {name: p, version: 1, issue_types: [cpu_spike], action: reboot,"
        " risk: LOW, estimated_downtime_s: 0, pre_checks: [pray]}\n", encoding="utf-8")
    code, out = invoke("validate", str(tmp_path))
    assert code == 1
    assert "action" in out and "pre_checks" in out


def test_show_by_name_or_ref() -> None:
    code, out = invoke("show", "restart-service")
    assert code == 0 and "memory_utilization" in out and "below 80.0" in out
    code, out = invoke("show", "restart-stalled-service@1", "--dir", PLAYBOOKS)
    assert code == 0 and "above the alert's threshold" in out
    assert invoke("show", "nope")[0] == 1


def test_cases_are_data_only(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "cases.yaml"
    path.write_text(f"cases: !!python/object/apply:os.system ['touch {marker}']\n",
                    encoding="utf-8")
    code, out = invoke("test", str(path))
    assert code == 1 and "cannot read cases" in out
    assert not marker.exists()
