"""``dharma incidents``: the incidents self-healing opened, and one incident's story.

    dharma incidents list --status open
    dharma incidents show inc-5f0c2a9e41d7b3c8 --json

Read from the healing worker's store in PostgreSQL (:mod:`dharma.sinks.incidents`).
``show`` gives the timeline the worker wrote: alerts, root cause, guard decisions,
executor reports, verification, escalations, approvals, resolution.  An unknown
incident or a database that cannot be reached: a message on stderr and exit code 1.
"""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from dharma.agents.healing.timeline import duration, one_line
from dharma.cli.cmdb import JSON_HELP, emit_json, failures, iso, plain, say
from dharma.cli.common import console, load_settings

if TYPE_CHECKING:
    from dharma.sinks.incident_controls import IncidentDetail
    from dharma.sinks.incidents import IncidentRow, RemediationRow

__all__ = ["duration", "incidents_app", "one_line", "register", "remediation_table"]

incidents_app = typer.Typer(help="Incidents opened by self-healing, and their timelines.",
                            no_args_is_help=True)


class IncidentStatus(StrEnum):
    """Which incidents to list (``pending``: still collecting alerts)."""

    pending = "pending"
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"
    all = "all"


def _category(incident: IncidentRow) -> str:
    if incident.category is None:
        return "-"
    return incident.category + ("" if incident.confidence is None
                                else f" ({incident.confidence:.2f})")


def _list_table(rows: list[IncidentRow]) -> Table:
    table = Table("id", "status", "root", "category", "severity", "title", "opened",
                  "symptoms", "MTTR", title="incidents")
    for i in rows:
        table.add_row(*plain(i.incident_id, i.status, i.root or "-", _category(i), i.severity,
                             i.title, iso(i.opened_at), len(i.symptoms),
                             duration(i.mttr_ms)))
    return table


@incidents_app.command("list")
def list_(
    status: IncidentStatus = typer.Option(IncidentStatus.all, help="Which incidents."),
    limit: int = typer.Option(20, min=1, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Incidents, newest first: status, root cause, issue type (with the classifier's
    confidence), severity, title, when the first alert came, symptoms, MTTR."""
    from dharma.sinks.incident_controls import list_incidents

    dsn = load_settings().postgres.dsn.get_secret_value()
    statuses = [] if status is IncidentStatus.all else [status.value]
    with failures():
        rows = list_incidents(dsn, statuses, limit)
    if as_json:
        emit_json([asdict(i) for i in rows])
    elif rows:
        console.print(_list_table(rows))
    else:
        say("no incidents" + ("" if status is IncidentStatus.all else f" {status.value}"))


def remediation_table(rows: list[RemediationRow], title: str,
                      with_incident: bool = False) -> Table:
    """Remediations as a table (``with_incident``: their incident and when each was
    decided, for ``dharma remediation list``)."""
    extra = ("incident", "decided") if with_incident else ()
    table = Table("id", *extra, "target", "action", "playbook", "status", "guard", "reason",
                  "outcome", "attempt", "kind", "approved by", title=title)
    for r in rows:
        where = (r.incident_id, iso(r.decided_at)) if with_incident else ()
        table.add_row(*plain(r.remediation_id, *where, r.target, r.action, r.playbook,
                             r.status, r.guard or "-", r.reason or "-", r.outcome or "-",
                             r.attempt, r.kind, r.approved_by or "-"))
    return table


def _print_detail(d: IncidentDetail) -> None:
    i = d.incident
    facts = Table("property", "value", title=Text(f"incident {i.incident_id}"))
    for key, value in (("status", i.status), ("title", i.title), ("severity", i.severity),
                       ("root cause", i.root or "-"), ("symptoms", ", ".join(i.symptoms) or "-"),
                       ("issue type", _category(i)), ("opened", iso(i.opened_at)),
                       ("resolved", iso(i.resolved_at)), ("MTTR", duration(i.mttr_ms)),
                       ("annotations", "; ".join(i.annotations) or "-")):
        facts.add_row(*plain(key, value))
    console.print(facts)
    alerts = Table("source", "kind", "severity", "firing", "first", "last", "summary",
                   title="alerts")
    for a in d.alerts:
        alerts.add_row(*plain(a.source, a.kind, a.severity, "yes" if a.firing else "no",
                              iso(a.first_ts), iso(a.last_ts), a.summary))
    console.print(alerts)
    if d.remediations:
        console.print(remediation_table(d.remediations, "remediations"))
    else:
        say("no remediation decided yet")
    timeline = Table("time", "kind", "detail", title="timeline")
    for entry in d.timeline:
        timeline.add_row(*plain(iso(entry.at), entry.kind, one_line(entry.kind, entry.detail)))
    console.print(timeline)


@incidents_app.command()
def show(
    incident_id: str = typer.Argument(..., help="The incident's id (inc-...)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """One incident: its alerts, root cause and symptoms, remediations, and the
    timeline (alerts, root cause, guards, actions, verification)."""
    from dharma.sinks.incident_controls import incident_detail

    dsn = load_settings().postgres.dsn.get_secret_value()
    with failures():
        detail = incident_detail(dsn, incident_id)
    if detail is None:
        say(f"no incident {incident_id!r} (dharma incidents list shows them)", err=True)
        raise typer.Exit(1)
    if as_json:
        emit_json(asdict(detail))
    else:
        _print_detail(detail)


def register(app: typer.Typer) -> None:
    """Add the ``incidents`` command group."""
    app.add_typer(incidents_app, name="incidents")
