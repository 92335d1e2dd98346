"""Playbooks: the packaged set against the generator's catalogue, load errors, match()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dharma.agents.healing.classify import ISSUE_TYPES, UNKNOWN
from dharma.agents.healing.playbooks import (
    ANY,
    Playbook,
    PlaybookError,
    PlaybookSet,
    Verification,
    load_playbooks,
    validate_playbooks,
)
from dharma.synthetic.incidents import CATALOGUE

MINIMAL: dict[str, Any] = {"name": "p", "version": 1, "issue_types": ["cpu_spike"],
                           "action": "scale_out", "risk": "LOW", "estimated_downtime_s": 0}


def write(path: Path, *playbooks: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"playbooks": list(playbooks)}), encoding="utf-8")
    return path


def errors_of(tmp_path: Path, **override: Any) -> list[str]:
    return validate_playbooks(write(tmp_path / "p.yaml", {**MINIMAL, **override}))


def test_issue_types_are_the_generators_categories_and_unknown() -> None:
    assert set(ISSUE_TYPES) == set(CATALOGUE) | {UNKNOWN}


def test_the_default_set_heals_every_category_of_the_generator() -> None:
    playbooks = load_playbooks()
    for name, category in CATALOGUE.items():
        for asset_type in category.metrics:
            found = playbooks.match(name, asset_type)
            assert found is not None and found.action == category.remediation, (name, asset_type)


def test_the_seed_example_playbook() -> None:
    found = load_playbooks().match("memory_leak", "web")
    assert found is not None and found.ref == "restart-service@1"
    assert (found.action, found.risk, found.requires_approval, found.needs_approval,
            found.estimated_downtime_s, found.max_attempts) == (
        "restart_service", "LOW", False, False, 30, 2)
    assert found.pre_checks == ["no_active_deployment", "rollback_plan_exists",
                                "not_in_chaos_experiment"]
    check = found.verification
    assert (check.metric, check.bound(None), check.window_s, check.grace_s) == (
        "memory_utilization", ("below", 80.0), 300.0, 30.0)
    assert found.rollback == "rollback" and found.timeout_s is None


def test_the_default_set_gates_risk_and_falls_back_to_a_human() -> None:
    playbooks = load_playbooks()
    for asset_type, risk in (("db", "MEDIUM"), ("queue", "LOW")):
        found = playbooks.match("disk_filling", asset_type)
        assert found is not None and found.risk == risk
    db_leak = playbooks.match("memory_leak", "db")
    assert db_leak is not None and (db_leak.risk, db_leak.needs_approval) == ("HIGH", True)
    latency = playbooks.match("latency_shift", "web")
    assert latency is not None and latency.needs_approval
    for issue, asset in ((UNKNOWN, "web"), ("memory_leak", None), ("memory_leak", "cache")):
        fallback = playbooks.match(issue, asset)
        assert fallback is not None and fallback.action == "notify"


@pytest.mark.parametrize(("override", "needle"), [
    ({"pre_checks": ["backup_available"]}, "pre_checks.0"),
    ({"action": "reboot_datacenter"}, "action"),
    ({"issue_types": ["memory-leak"]}, "unknown issue type"),
    ({"issue_types": ["*", "cpu_spike"]}, "stands alone"),
    ({"risk": "low"}, "risk"),
    ({"command": "systemctl restart java-app"}, "command"),
    ({"pre_checks": ["rollback_plan_exists"]}, "needs a 'rollback'"),
    ({"verification": {"below": 80, "above": 10}}, "not both"),
    ({"verification": {"window_s": 60, "grace_s": 60}}, "shorter than window_s"),
    ({"version": 0}, "version"),
    ({"max_attempts": 0}, "max_attempts"),
])
def test_a_bad_playbook_is_a_clear_load_error(tmp_path: Path, override: dict[str, Any],
                                              needle: str) -> None:
    errors = errors_of(tmp_path, **override)
    assert errors and any(needle in e for e in errors), errors
    assert all(e.startswith("p.yaml playbook p@") for e in errors)


def test_a_duplicate_name_at_version_across_files_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", MINIMAL)
    write(tmp_path / "b.yaml", {**MINIMAL, "issue_types": ["*"]})
    with pytest.raises(PlaybookError, match="duplicate playbook p@1"):
        load_playbooks(tmp_path)
    write(tmp_path / "b.yaml", {**MINIMAL, "version": 2})
    assert [pb.ref for pb in load_playbooks(tmp_path)] == ["p@1", "p@2"]


@pytest.mark.parametrize("text", [
    "", "playbooks: []\n", "- name: p\n", "playbook: [{name: p}]\n", "playbooks: [\n",
])
def test_an_empty_misspelt_or_broken_file_is_an_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PlaybookError, match=r"p\.yaml"):
        load_playbooks(tmp_path)


def test_yaml_is_data_only(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "p.yaml").write_text(
        f"playbooks:\n  - !!python/object/apply:os.system ['touch {marker}']\n",
        encoding="utf-8")
    with pytest.raises(PlaybookError):
        load_playbooks(tmp_path)
    assert not marker.exists()


def test_a_missing_or_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="no playbook files"):
        load_playbooks(tmp_path)
    assert validate_playbooks(tmp_path / "nowhere")


def test_a_single_file_loads() -> None:
    from dharma.agents.healing.playbooks import default_playbook_dir

    only = load_playbooks(default_playbook_dir() / "10-restart-service.yaml")
    assert [pb.ref for pb in only] == ["restart-service@1"]
    assert only.match("cpu_spike", "web") is None


def test_verification_bounds() -> None:
    assert Verification().bound(None) is None
    assert Verification().recovered(1e9, None)  # nothing to compare: the health check decides
    assert Verification(above="alert").bound(50) == ("above", 50.0)
    assert not Verification(above="alert").recovered(49.9, 50)
    assert Verification(below=80).recovered(79.9, 10) and not Verification(below=80).recovered(
        80, None)
    assert Verification(metric=None).metric_for("cpu") == "cpu"
    assert Verification(metric="mem").metric_for("cpu") == "mem"


ISSUES = st.sampled_from(ISSUE_TYPES)
ASSETS = st.sampled_from(["web", "app", "db", "queue"])
PLAYBOOKS = st.lists(st.tuples(
    st.one_of(st.just([ANY]), st.lists(ISSUES, min_size=1, max_size=3, unique=True)),
    st.one_of(st.just([]), st.just([ANY]), st.lists(ASSETS, min_size=1, max_size=2, unique=True)),
), max_size=8)


def _rank(pb: Playbook, issue: str, asset: str | None) -> int | None:
    """Reference specificity, spelled out from the documented order."""
    issue_ok = pb.issue_types == [ANY] or issue in pb.issue_types
    any_asset = pb.asset_types in ([], [ANY])
    if not issue_ok or not (any_asset or asset in pb.asset_types):
        return None
    return {(True, True): 3, (True, False): 2, (False, True): 1, (False, False): 0}[
        (pb.issue_types != [ANY], not any_asset)]


@settings(max_examples=200, deadline=None)
@given(PLAYBOOKS, ISSUES, st.one_of(st.none(), ASSETS))
def test_match_is_the_first_of_the_most_specific(
        specs: list[tuple[list[str], list[str]]], issue: str, asset: str | None) -> None:
    playbooks = PlaybookSet(
        Playbook(**{**MINIMAL, "name": f"p{i}", "issue_types": issues, "asset_types": assets})
        for i, (issues, assets) in enumerate(specs))
    ranks = [_rank(pb, issue, asset) for pb in playbooks]
    found = playbooks.match(issue, asset)
    covering = [r for r in ranks if r is not None]
    if not covering:
        assert found is None
        return
    expected = playbooks.playbooks[ranks.index(max(covering))]
    assert found is expected


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_bytes(b"playbooks:\n  - name: \xff\xfe\n")
    with pytest.raises(PlaybookError, match=r"p\.yaml"):
        load_playbooks(tmp_path)


def test_a_file_may_be_a_bare_list_of_playbooks(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump([MINIMAL]), encoding="utf-8")
    assert [pb.ref for pb in load_playbooks(tmp_path)] == ["p@1"]
