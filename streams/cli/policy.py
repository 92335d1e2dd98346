"""``dharma policy``: test and validate zero-trust policy sets.

``dharma policy test POLICY_DIR CASES.yaml`` runs table-driven cases (exit 1
on any failure); ``dharma policy validate POLICY_DIR`` checks a policy set
(exit 1 when invalid).  ``dharma policy shadow`` (Kafka) is wired by the lead
on top of :func:`dharma.agents.trust.shadow_compare`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dharma.agents.trust.cases import load_cases, run_cases
from dharma.agents.trust.index import PolicyError, PolicySet, load_policy_set

__all__ = ["register"]

_Dir = Annotated[Path, typer.Argument(help="Directory of policy YAML files (or one file).")]


def _load(policy_dir: Path, console: Console) -> PolicySet:
    try:
        return load_policy_set(policy_dir)
    except (PolicyError, OSError) as exc:
        errors = exc.errors if isinstance(exc, PolicyError) else [str(exc)]
        for err in errors:
            console.print(f"[red]error[/red] {err}")
        raise typer.Exit(1) from exc


def cmd_test(
    policy_dir: _Dir,
    cases_file: Annotated[Path, typer.Argument(help="YAML file of cases.")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show reasons.")] = False,
) -> None:
    """Run table-driven cases (input -> expected decision) against a policy set."""
    console = Console()
    policies = _load(policy_dir, console)
    try:
        cases = load_cases(cases_file)
    except (OSError, ValidationError, ValueError) as exc:
        console.print(f"[red]error[/red] cannot read cases {cases_file}: {exc}")
        raise typer.Exit(1) from exc
    results = run_cases(policies, cases)
    table = Table(title=f"policy set {policies.version}")
    for col in ("case", "expected", "got", "policy", "score", "result"):
        table.add_column(col)
    for r in results:
        mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
        detail = "; ".join(r.problems + (r.reasons if verbose or not r.passed else []))
        table.add_row(r.name, r.expected, r.got, r.policy or "-", f"{r.trust_score:.2f}", mark)
        if detail:
            table.add_row("", "", "", "", "", f"[dim]{detail}[/dim]")
    console.print(table)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


def cmd_validate(policy_dir: _Dir) -> None:
    """Check a policy set: schema, globs, CIDRs, unique ids."""
    console = Console()
    policies = _load(policy_dir, console)
    table = Table(title=f"policy set {policies.version}: {len(policies)} policies")
    for col in ("id", "name", "effect", "resources", "actions", "min trust", "v"):
        table.add_column(col)
    for cp in policies.policies:
        p = cp.policy
        level = "-" if p.effect == "forbid" else p.min_trust_level
        row = (p.id, p.name, p.effect, ", ".join(p.resources), ", ".join(p.actions), level)
        table.add_row(*row, str(p.version))
    console.print(table)
    console.print("[green]valid[/green]")


def register(app: typer.Typer) -> None:
    """Add the ``policy`` command group to ``app``."""
    group = typer.Typer(help="Zero-trust policy sets: test and validate.", no_args_is_help=True)
    group.command("test")(cmd_test)
    group.command("validate")(cmd_validate)
    app.add_typer(group, name="policy")
