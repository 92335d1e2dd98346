"""``dharma remediation``: list remediations, approve one, pause and resume them all.

    dharma remediation list --status awaiting_approval
    dharma remediation approve rem-3c1f0e2a9b8d7c6e --by alice
    dharma remediation pause --reason "network maintenance"
    dharma remediation resume

Approving and pausing are writes to the healing worker's store in PostgreSQL
(:mod:`dharma.sinks.incident_controls`) that the worker reads on its next tick
(``DHARMA_HEALING_TICK_S``): an approved remediation is ruled again by the other
guards and requested; while paused, every decision is deferred (guard ``paused``)
and ruled again on resume.  Who and when are recorded.  Anything else (an unknown
id, a remediation not awaiting approval, a database away): a message on stderr and
exit code 1.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from dharma.cli.cmdb import JSON_HELP, emit_json, failures, iso, say
from dharma.cli.common import console, load_settings
from dharma.cli.incidents import remediation_table

if TYPE_CHECKING:
    from dharma.sinks.incident_controls import PauseState

__all__ = ["register", "remediation_app"]

remediation_app = typer.Typer(help="Remediations: list, approve, pause and resume.",
                              no_args_is_help=True)

_BY_HELP = "Who does it (recorded); $USER by default."


class RemediationStatus(StrEnum):
    """Which remediations to list (``decided``: stored, guards not yet run)."""

    decided = "decided"
    requested = "requested"
    started = "started"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    deferred = "deferred"
    awaiting_approval = "awaiting_approval"
    all = "all"


def _dsn() -> str:
    return load_settings().postgres.dsn.get_secret_value()


def _operator(by: str | None) -> str:
    return by or os.environ.get("USER") or "unknown"


def _describe(state: PauseState) -> str:
    why = f": {state.reason}" if state.reason else ""
    return f"by {state.by} at {iso(state.at)}{why}"


@remediation_app.command("list")
def list_(
    status: RemediationStatus = typer.Option(RemediationStatus.all, help="Which ones."),
    limit: int = typer.Option(20, min=1, help="How many, newest decision first."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Remediations, newest decision first (and whether remediation is paused)."""
    from dharma.sinks.incident_controls import list_remediations, pause_state

    dsn = _dsn()
    statuses = [] if status is RemediationStatus.all else [status.value]
    with failures():
        rows, pause = list_remediations(dsn, statuses, limit), pause_state(dsn)
    paused = pause if pause is not None and pause.paused else None
    if as_json:
        emit_json({"paused": None if paused is None else asdict(paused),
                   "remediations": [asdict(r) for r in rows]})
        return
    if paused is not None:
        say(f"remediation is PAUSED {_describe(paused)} (dharma remediation resume)")
    if rows:
        console.print(remediation_table(rows, "remediations", with_incident=True))
    else:
        say("no remediations" + ("" if status is RemediationStatus.all else f" {status.value}"))


@remediation_app.command()
def approve(
    remediation_id: str = typer.Argument(..., help="The remediation's id (rem-...)."),
    by: str | None = typer.Option(None, help=_BY_HELP),
) -> None:
    """Approve a remediation awaiting approval; the healing worker then rules it again
    (every other guard still applies) and requests it."""
    from dharma.sinks.incident_controls import approve as approve_remediation

    who = _operator(by)
    with failures():
        r, first = approve_remediation(_dsn(), remediation_id, who)
    what = f"{r.remediation_id} ({r.action} on {r.target}, {r.playbook}, {r.incident_id})"
    if first:
        say(f"approved {what} by {who}: the healing worker requests it on its next tick "
            f"unless another guard holds it (dharma incidents show {r.incident_id})")
    else:
        say(f"{what} was approved already by {r.approved_by}: waiting for the healing "
            "worker's next tick")


@remediation_app.command()
def pause(
    reason: str = typer.Option("", help="Why (recorded, shown by list)."),
    by: str | None = typer.Option(None, help=_BY_HELP),
) -> None:
    """Pause remediation: the healing worker defers every decision (guard paused) until
    ``dharma remediation resume``; incidents are still opened and followed."""
    from dharma.sinks.incident_controls import set_paused

    with failures():
        before, now = set_paused(_dsn(), True, _operator(by), reason)
    if before is now:
        say(f"remediation is paused already ({_describe(now)})")
    else:
        say(f"remediation paused {_describe(now)}: decisions are deferred (guard paused) "
            "until dharma remediation resume")


@remediation_app.command()
def resume(by: str | None = typer.Option(None, help=_BY_HELP)) -> None:
    """Resume remediation: the healing worker rules the deferred decisions again on its
    next tick."""
    from dharma.sinks.incident_controls import deferred_by_pause, set_paused

    dsn = _dsn()
    with failures():
        before, now = set_paused(dsn, False, _operator(by))
        deferred = deferred_by_pause(dsn)
    if before is now:
        say(f"remediation is not paused (resumed {_describe(now)})")
    else:
        say(f"remediation resumed {_describe(now)}: {deferred} remediation(s) deferred "
            "by the pause are ruled again on the healing worker's next tick")


def register(app: typer.Typer) -> None:
    """Add the ``remediation`` command group."""
    app.add_typer(remediation_app, name="remediation")
