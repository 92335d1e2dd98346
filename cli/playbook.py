"""``dharma playbook list | show | test | validate``: the remediation playbook set.

A set is a directory of playbook YAML files (or one file); without one, the
set the healing worker uses: ``DHARMA_HEALING_PLAYBOOK_DIR``, else the packaged
default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dharma.agents.healing.cases import load_cases, run_cases
from dharma.agents.healing.playbooks import Playbook, PlaybookError, PlaybookSet, load_playbooks

__all__ = ["register"]

_OptionalDir = Annotated[Path | None, typer.Argument(
    help="Directory of playbook YAML files (or one file); default: the worker's set.")]


def _configured_dir() -> Path | None:
    from dharma.cli.common import load_settings

    return load_settings().healing.playbook_dir


def _load(path: Path | None, console: Console) -> PlaybookSet:
    try:
        return load_playbooks(path if path is not None else _configured_dir())
    except PlaybookError as exc:
        for err in exc.errors:
            console.print(f"[red]error[/red] {err}")
        raise typer.Exit(1) from exc


def _summary(playbooks: PlaybookSet, title: str) -> Table:
    table = Table(title=title)
    for col in ("playbook", "issue types", "asset types", "action", "risk", "approval",
                "downtime s", "rollback"):
        table.add_column(col)
    for pb in playbooks:
        table.add_row(pb.ref, ", ".join(pb.issue_types), ", ".join(pb.asset_types) or "*",
                      pb.action, pb.risk, "yes" if pb.needs_approval else "no",
                      str(pb.estimated_downtime_s), pb.rollback or "-")
    return table


def cmd_list(playbook_dir: _OptionalDir = None) -> None:
    """List the playbooks of a set, in matching order among equals (file order)."""
    console = Console()
    playbooks = _load(playbook_dir, console)
    console.print(_summary(playbooks, f"{len(playbooks)} playbooks"))


def _details(pb: Playbook) -> Table:
    table = Table(title=pb.ref, show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in pb.model_dump(exclude={"verification"}).items():
        table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    table.add_row("needs approval", "yes" if pb.needs_approval else "no")
    check = pb.verification
    table.add_row("verification.metric", check.metric or "(the alert's)")
    table.add_row("verification.bound", _bound_text(check.above, check.below))
    for key in ("health_check", "window_s", "grace_s"):
        table.add_row(f"verification.{key}", str(getattr(check, key)))
    return table


def _bound_text(above: float | str | None, below: float | None) -> str:
    if above is not None:
        return "above the alert's threshold" if above == "alert" else f"above {above}"
    return "below the alert's threshold" if below is None else f"below {below}"


def cmd_show(
    name: Annotated[str, typer.Argument(help="Playbook name (every version) or name@version.")],
    playbook_dir: Annotated[Path | None, typer.Option(
        "--dir", help="Playbook set (default: the worker's).")] = None,
) -> None:
    """Show every field of a playbook."""
    console = Console()
    found = _load(playbook_dir, console).find(name)
    if not found:
        console.print(f"[red]error[/red] no playbook {name}")
        raise typer.Exit(1)
    for pb in found:
        console.print(_details(pb))


def cmd_test(
    paths: Annotated[list[Path], typer.Argument(
        help="[DIR] CASES.yaml: the playbook set (default: the worker's) and the cases.")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show passing details.")] = False,
) -> None:
    """Run table-driven cases (issue type, asset type -> expected playbook) against a set."""
    console = Console()
    if len(paths) not in (1, 2):
        console.print("[red]error[/red] give [DIR] CASES.yaml")
        raise typer.Exit(2)
    playbooks = _load(paths[0] if len(paths) == 2 else None, console)
    try:
        cases = load_cases(paths[-1])
    except (OSError, ValidationError, ValueError, yaml.YAMLError) as exc:
        console.print(f"[red]error[/red] cannot read cases {paths[-1]}: {exc}")
        raise typer.Exit(1) from exc
    results = run_cases(playbooks, cases)
    table = Table(title=f"{len(playbooks)} playbooks, {len(results)} cases")
    for col in ("case", "expected", "got", "result"):
        table.add_column(col)
    for r in results:
        mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
        table.add_row(r.name, r.expected, r.got, mark)
        if r.problems and (verbose or not r.passed):
            table.add_row("", "", "", f"[dim]{'; '.join(r.problems)}[/dim]")
    console.print(table)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


def cmd_validate(playbook_dir: _OptionalDir = None) -> None:
    """Check a playbook set: schema, known issue types, actions and pre-checks, unique
    name@version."""
    console = Console()
    playbooks = _load(playbook_dir, console)
    console.print(_summary(playbooks, f"{len(playbooks)} playbooks"))
    console.print("[green]valid[/green]")


def register(app: typer.Typer) -> None:
    """Add the ``playbook`` command group to ``app``."""
    group = typer.Typer(help="Remediation playbooks: list, show, test, validate.",
                        no_args_is_help=True)
    group.command("list")(cmd_list)
    group.command("show")(cmd_show)
    group.command("test")(cmd_test)
    group.command("validate")(cmd_validate)
    app.add_typer(group, name="playbook")
