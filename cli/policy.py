"""``dharma policy``: test and validate zero-trust policy sets.

``dharma policy test POLICY_DIR CASES.yaml`` runs table-driven cases (exit 1
on any failure); ``dharma policy validate POLICY_DIR`` checks a policy set
(exit 1 when invalid).  ``dharma policy shadow NEW_DIR`` reads recent
``audit.logs`` access requests from the broker and reports how the candidate
policy set would have decided them compared with the current one
(:func:`dharma.agents.trust.shadow_compare`: each set replays them through the
trust agent's batch step, :class:`~dharma.agents.trust.logic.TrustStep`).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dharma.agents.trust.cases import load_cases, run_cases
from dharma.agents.trust.engine import TrustEngine
from dharma.agents.trust.index import PolicyError, PolicySet, default_policy_dir, load_policy_set
from dharma.agents.trust.shadow import ShadowReport, shadow_compare

if TYPE_CHECKING:
    from dharma.streams.settings import Settings

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


def read_audit_events(settings: Settings, since_ms: int | None, limit: int,
                      timeout_s: float = 30.0) -> tuple[list[dict[str, Any]], int]:
    """Decoded ``audit.logs`` access requests from ``since_ms`` (or the beginning).

    Reads with ``assign`` (no consumer group), up to the end offsets seen at
    the start, at most ``limit`` events; returns the events and how many
    records could not be decoded.
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    from dharma.streams.admin import registry_client
    from dharma.streams.codec import AvroWire
    from dharma.streams.errors import RejectedEvent
    from dharma.streams.topics import AUDIT_LOGS

    wire = AvroWire(registry_client(settings))
    consumer = Consumer({**settings.kafka.confluent_config(), "enable.auto.commit": False,
                         "group.id": f"dharma-shadow-{uuid.uuid4().hex[:8]}", "log_level": 3})
    try:
        parts = consumer.list_topics(AUDIT_LOGS.name, timeout=10).topics[AUDIT_LOGS.name]
        tps = [TopicPartition(AUDIT_LOGS.name, p, since_ms if since_ms is not None
                              else OFFSET_BEGINNING) for p in parts.partitions]
        if since_ms is not None:
            tps = consumer.offsets_for_times(tps, timeout=10)
        marks = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10) for tp in tps}
        ends = {p: high for p, (_, high) in marks.items()}
        pending = {tp.partition for tp in tps if ends[tp.partition] > max(
            marks[tp.partition][0], tp.offset) and tp.offset != OFFSET_END}
        consumer.assign(tps)
        events: list[dict[str, Any]] = []
        bad, deadline = 0, time.monotonic() + timeout_s
        while pending and len(events) < limit and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                part, offset = msg.partition() or 0, msg.offset() or 0
                if msg.error():
                    continue
                if offset + 1 >= ends[part]:
                    pending.discard(part)
                try:
                    value = wire.decode(AUDIT_LOGS.value_subject, msg.value())
                except RejectedEvent:
                    bad += 1
                    continue
                if value.get("event_type") == "access_request" and len(events) < limit:
                    events.append(value)
        return events, bad
    finally:
        consumer.close()


def _print_report(console: Console, report: ShadowReport, undecodable: int) -> None:
    summary = Table(title=f"shadow: {report.current_version} -> {report.candidate_version}")
    for col in ("events", "agree", "agreement", "loosened", "tightened", "undecodable"):
        summary.add_column(col, justify="right")
    summary.add_row(str(report.total), str(report.agree), f"{report.agreement:.2%}",
                    f"[red]{report.loosened}[/red]" if report.loosened else "0",
                    str(report.tightened), str(undecodable))
    console.print(summary)
    if report.transitions:
        moves = Table(title="changed decisions")
        moves.add_column("current -> candidate")
        moves.add_column("events", justify="right")
        for move, count in sorted(report.transitions.items(), key=lambda kv: -kv[1]):
            moves.add_row(move, str(count))
        console.print(moves)
    if report.samples:
        samples = Table(title=f"samples ({len(report.samples)})")
        for col in ("event", "user", "resource", "action", "current", "candidate"):
            samples.add_column(col)
        for d in report.samples:
            samples.add_row(d.event_id, d.user_id, d.resource, d.action,
                            f"{d.current} ({d.current_policy or '-'})",
                            f"{d.candidate} ({d.candidate_policy or '-'})")
        console.print(samples)


def cmd_shadow(
    new_dir: Annotated[Path, typer.Argument(help="Candidate policy directory.")],
    since_minutes: Annotated[int | None, typer.Option(
        help="Only events of the last N minutes (default: from the beginning).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many access requests.")] = 10_000,
    current_dir: Annotated[Path | None, typer.Option(
        help="Current policy set (default: DHARMA_WORKER_POLICY_DIR or the packaged one).")
    ] = None,
) -> None:
    """Replay recent audit.logs requests against a candidate policy set; report differences."""
    from dharma.cli.common import load_settings

    console = Console()
    settings = load_settings()
    current = _load(current_dir or settings.worker.policy_dir or default_policy_dir(), console)
    candidate = _load(new_dir, console)
    since = None if since_minutes is None else int((time.time() - since_minutes * 60) * 1000)
    events, bad = read_audit_events(settings, since, limit)
    report = shadow_compare(events, TrustEngine(current), TrustEngine(candidate))
    _print_report(console, report, bad)


def register(app: typer.Typer) -> None:
    """Add the ``policy`` command group to ``app``."""
    group = typer.Typer(help="Zero-trust policy sets: test, validate, shadow.",
                        no_args_is_help=True)
    group.command("test")(cmd_test)
    group.command("validate")(cmd_validate)
    group.command("shadow")(cmd_shadow)
    app.add_typer(group, name="policy")
