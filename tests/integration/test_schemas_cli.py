"""``dharma schemas register | check`` and contract evolution through our own admin code.

Compatibility is decided by the registry (BACKWARD), reached through
:func:`register_schemas` / :func:`check_schemas` and the CLI; changed contracts
are read from a temporary copy of ``schemas/`` (``--dir``), and anything that
would be registered goes under a throwaway subject, so the session's real
subjects never change.
"""

from __future__ import annotations

import json
import uuid
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError
from typer.testing import CliRunner

from dharma.cli import app
from dharma.schemas import load_schema
from dharma.streams.admin import all_subjects, check_schemas, register_schemas, registry_client
from dharma.streams.settings import Settings

pytestmark = pytest.mark.integration

runner = CliRunner()
BASE = load_schema("metrics.raw-value")
REQUIRED = {"name": "host", "type": "string", "doc": "Host name, required: not backward."}
OPTIONAL = {"name": "host", "type": ["null", "string"], "default": None, "doc": "Optional host."}


def with_field(field: dict[str, Any]) -> dict[str, Any]:
    return {**BASE, "fields": [*BASE["fields"], field]}


def retyped_value() -> dict[str, Any]:
    return {**BASE, "fields": [{**f, "type": "string"} if f["name"] == "value" else f
                               for f in BASE["fields"]]}


@pytest.fixture
def schemas_copy(tmp_path: Path) -> Path:
    """A copy of the packaged contracts, to change."""
    folder = tmp_path / "schemas"
    folder.mkdir()
    for resource in files("dharma.schemas").iterdir():
        if resource.name.endswith(".avsc"):
            (folder / resource.name).write_text(resource.read_text(encoding="utf-8"))
    return folder


def write(folder: Path, subject: str, schema: Any) -> None:
    (folder / f"{subject}.avsc").write_text(json.dumps(schema, indent=1), encoding="utf-8")


def by_subject(reports: list[Any]) -> dict[str, Any]:
    return {r.subject: r for r in reports}


def test_register_then_check_exit_zero(settings: Settings) -> None:
    registered = runner.invoke(app, ["schemas", "register"])
    assert registered.exit_code == 0, registered.output
    assert "metrics.raw-value" in registered.output
    checked = runner.invoke(app, ["schemas", "check"])
    assert checked.exit_code == 0, checked.output
    assert "NO" not in checked.output
    reports = check_schemas(settings)
    assert [r.subject for r in reports] == all_subjects()
    assert all(r.registered and r.compatible for r in reports)


def test_check_dir_flags_an_incompatible_change(settings: Settings, schemas_copy: Path) -> None:
    write(schemas_copy, "metrics.raw-value", with_field(REQUIRED))
    result = runner.invoke(app, ["schemas", "check", "--dir", str(schemas_copy)])
    assert result.exit_code == 1, result.output
    assert "NO" in result.output
    reports = by_subject(check_schemas(settings, schemas_copy))
    assert not reports["metrics.raw-value"].compatible
    assert all(r.compatible for s, r in reports.items() if s != "metrics.raw-value")


def test_check_dir_accepts_a_compatible_change(settings: Settings, schemas_copy: Path) -> None:
    write(schemas_copy, "metrics.raw-value", with_field(OPTIONAL))
    result = runner.invoke(app, ["schemas", "check", "--dir", str(schemas_copy)])
    assert result.exit_code == 0, result.output
    assert all(r.compatible for r in check_schemas(settings, schemas_copy))


def test_check_dir_must_exist(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schemas", "check", "--dir", str(tmp_path / "missing")])
    assert result.exit_code == 2


@pytest.fixture
def throwaway(settings: Settings, tmp_path: Path) -> tuple[str, Path]:
    """A fresh subject holding the current contract, at BACKWARD compatibility."""
    subject = f"t{uuid.uuid4().hex[:8]}.metrics.raw-value"
    folder = tmp_path / "proposed"
    folder.mkdir()
    write(folder, subject, BASE)
    client = registry_client(settings)
    client.set_compatibility(subject_name=subject, level="BACKWARD")
    assert client.get_compatibility(subject) == "BACKWARD"
    (report,) = check_schemas(settings, folder, [subject])
    assert report.compatible and not report.registered
    register_schemas(settings, folder, [subject])
    return subject, folder


@pytest.mark.parametrize("incompatible", [with_field(REQUIRED), retyped_value()],
                         ids=["new-required-field", "retyped-field"])
def test_incompatible_change_is_refused_under_backward(
    settings: Settings, throwaway: tuple[str, Path], incompatible: dict[str, Any]
) -> None:
    subject, folder = throwaway
    write(folder, subject, incompatible)
    (report,) = check_schemas(settings, folder, [subject])
    assert report.registered and not report.compatible
    with pytest.raises(SchemaRegistryError) as refused:
        register_schemas(settings, folder, [subject])
    assert refused.value.http_status_code == 409
    assert registry_client(settings).get_versions(subject) == [1]


def test_compatible_change_is_accepted_under_backward(
    settings: Settings, throwaway: tuple[str, Path]
) -> None:
    subject, folder = throwaway
    first = registry_client(settings).get_latest_version(subject).schema_id
    write(folder, subject, with_field(OPTIONAL))
    (report,) = check_schemas(settings, folder, [subject])
    assert report.registered and report.compatible
    ids = register_schemas(settings, folder, [subject])
    assert ids[subject] != first
    assert registry_client(settings).get_versions(subject) == [1, 2]
    # registering the same contract again is idempotent
    assert register_schemas(settings, folder, [subject]) == ids
