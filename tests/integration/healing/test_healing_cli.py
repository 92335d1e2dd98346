"""``dharma incidents`` and ``dharma remediation`` against the session's PostgreSQL,
and the operators' loop through Kafka: an approval-gated remediation waits for
``dharma remediation approve``; a pause defers a remediation until ``resume``.

``list`` and ``show`` read rows written here through :class:`IncidentStore`, under a
prefix of the test's own (one PostgreSQL serves the session).  The pause is global
to the session's store, so every test that pauses resumes in a ``finally``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from healing_support import (
    ALERTS,
    alert,
    build_estate,
    executor,
    leak_history,
    prefix,
    produce,
    remediations_on,
    start_workers,
    store_rows,
    write_incidents,
)
from typer.testing import CliRunner, Result

from dharma.agents.healing import playbooks
from dharma.cli import app
from dharma.cli.common import console
from dharma.sinks.incident_controls import pause_state, set_paused
from dharma.sinks.incidents import (
    AlertRow,
    IncidentRow,
    IncidentStore,
    RemediationRow,
    TimelineEntry,
)
from dharma.streams.records import now_ms

pytestmark = pytest.mark.integration

runner = CliRunner()
T0 = 1_796_148_000_000  # 2026-12-01T18:00:00Z


def cli(*args: str, **env: str) -> Result:
    return runner.invoke(app, list(args), env=env or None)


def cli_json(*args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def dsn(settings: Any) -> str:
    return str(settings.postgres.dsn.get_secret_value())


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables wide enough that no cell wraps."""
    monkeypatch.setattr(console, "width", 400)


@pytest.fixture
def resumed(dsn: str) -> Iterator[None]:
    """Whatever the test does, remediation is not paused after it."""
    try:
        yield
    finally:
        set_paused(dsn, False, "test-cleanup")




def remediation(p: str, name: str, incident: str, status: str, **extra: Any) -> RemediationRow:
    return RemediationRow(f"rem-{p}{name}", incident, "remediate", "restart-service@1", 1,
                          f"{p}db-1", "restart_service", status, reason=f"{status} here",
                          decided_at=T0 + 2_000, **extra)


def database_incident(p: str) -> tuple[IncidentRow, list[AlertRow], list[RemediationRow],
                                       list[TimelineEntry]]:
    """A resolved incident rooted at a database with two services as symptoms."""
    inc, db = f"inc-{p}db", f"{p}db-1"
    incident = IncidentRow(inc, "resolved", T0, T0 + 1_500, "critical",
                           f"High Memory Usage on {db}", root=db,
                           symptoms=[f"{p}api-1", f"{p}api-2"], category="memory_leak",
                           confidence=0.87, resolved_at=T0 + 200_000, mttr_ms=125_000)
    alerts = [AlertRow(inc, f"fp-{p}{src}", f"{p}{src}", "threshold", "critical",
                       f"High Memory Usage on {p}{src}", {"metric": "memory_utilization"},
                       False, T0 + i, T0 + 100_000, [db] if src != "db-1" else [])
              for i, src in enumerate(("db-1", "api-1", "api-2"))]
    done = remediation(p, "db", inc, "succeeded", outcome="passed", risk="HIGH",
                       approved_by="alice")
    steps: list[tuple[str, int, dict[str, Any]]] = [
             ("alert", T0, {"source": db, "status": "firing", "severity": "critical",
                            "kind": "threshold", "summary": incident.title}),
             ("opened", T0 + 1_500, {"root_cause": db, "symptoms": incident.symptoms,
                                     "issue_type": "memory_leak", "confidence": 0.87}),
             ("decision", T0 + 2_000, {"remediation_id": done.remediation_id,
                                       "action": "restart_service", "target": db,
                                       "playbook": done.playbook, "status": "requested",
                                       "guard": None, "reason": "restart-service@1"}),
             ("verification", T0 + 190_000, {"remediation_id": done.remediation_id,
                                             "result": "passed",
                                             "detail": "memory_utilization under 80"}),
             ("resolved", T0 + 200_000, {"why": "restart_service verified",
                                         "mttr_ms": 125_000})]
    timeline = [TimelineEntry(f"{inc}:{kind}", inc, at, kind, detail)
                for kind, at, detail in steps]
    return incident, alerts, [done], timeline


def test_list_and_show_incidents_from_the_store(dsn: str, wide: None) -> None:
    p = prefix()
    incident, alerts, remediations, timeline = database_incident(p)
    web = IncidentRow(f"inc-{p}web", "open", T0 + 60_000, T0 + 61_500, "warning",
                      f"Latency on {p}web-1", root=f"{p}web-1", category="latency_shift",
                      confidence=0.6)
    write_incidents(dsn, [incident, web], alerts, remediations, timeline)

    listed = {i["incident_id"]: i for i in cli_json("incidents", "list", "--limit", "100000")
              if i["incident_id"].startswith(f"inc-{p}")}
    assert {k: (v["status"], v["root"], len(v["symptoms"]), v["mttr_ms"])
            for k, v in listed.items()} == {
        incident.incident_id: ("resolved", f"{p}db-1", 2, 125_000),
        web.incident_id: ("open", f"{p}web-1", 0, None)}
    open_ids = {i["incident_id"] for i in cli_json("incidents", "list", "--status", "open",
                                                   "--limit", "100000")}
    assert web.incident_id in open_ids and incident.incident_id not in open_ids

    table = cli("incidents", "list", "--status", "resolved", "--limit", "100000")
    assert table.exit_code == 0, table.output
    [line] = [x for x in table.stdout.splitlines() if incident.incident_id in x]
    for cell in ("resolved", "memory_leak (0.87)", "critical", "2026-12-01T18:00:00.000Z",
                 "2m05s", f"High Memory Usage on {p}db-1"):
        assert cell in line

    shown = cli_json("incidents", "show", incident.incident_id)
    assert shown["incident"]["root"] == f"{p}db-1"
    assert [a["source"] for a in shown["alerts"]] == [f"{p}db-1", f"{p}api-1", f"{p}api-2"]
    assert [(r["remediation_id"], r["status"], r["outcome"]) for r in shown["remediations"]] == [
        (f"rem-{p}db", "succeeded", "passed")]
    assert [e["kind"] for e in shown["timeline"]] == [
        "alert", "opened", "decision", "verification", "resolved"]

    text = cli("incidents", "show", incident.incident_id)
    assert text.exit_code == 0, text.output
    for line in (f"root cause {p}db-1, symptoms {p}api-1, {p}api-2: memory_leak "
                 "(confidence 0.87)",
                 f"restart_service on {p}db-1 (restart-service@1): requested: "
                 "restart-service@1",
                 f"rem-{p}db passed: memory_utilization under 80",
                 "restart_service verified (MTTR 2m05s)"):
        assert line in text.stdout


def test_show_unknown_incident_exits_1(dsn: str) -> None:
    result = cli("incidents", "show", "inc-nothing-like-it")
    assert result.exit_code == 1
    assert "no incident 'inc-nothing-like-it'" in result.stderr


def test_only_a_remediation_awaiting_approval_is_approved(settings: Any, dsn: str,
                                                          wide: None) -> None:
    p = prefix()
    inc = f"inc-{p}db"
    waiting, other = (remediation(p, "wait", inc, "awaiting_approval", guard="approval"),
                      replace(remediation(p, "done", inc, "requested"), attempt=2))
    defaulted = RemediationRow(f"rem-{p}default", inc, "remediate", "restart-database@1", 1,
                               f"{p}db-1", "restart_service", "awaiting_approval", "needs it",
                               T0)
    write_incidents(dsn, [IncidentRow(inc, "open", T0, T0, "critical", "db")], [],
          [waiting, other, defaulted])

    refused = cli("remediation", "approve", other.remediation_id, "--by", "alice")
    assert refused.exit_code == 1
    assert f"remediation {other.remediation_id} is requested, not awaiting_approval" in (
        refused.stderr)
    unknown = cli("remediation", "approve", f"rem-{p}nope")
    assert unknown.exit_code == 1 and f"no remediation 'rem-{p}nope'" in unknown.stderr

    approved = cli("remediation", "approve", waiting.remediation_id, "--by", "alice")
    assert approved.exit_code == 0, approved.output
    assert f"approved {waiting.remediation_id}" in approved.stdout
    again = cli("remediation", "approve", waiting.remediation_id, "--by", "bob")
    assert again.exit_code == 0 and "approved already by alice" in again.stdout
    by_user = cli("remediation", "approve", defaulted.remediation_id, USER="carol")
    assert by_user.exit_code == 0, by_user.output

    rows = {r["remediation_id"]: (r["status"], r["approved_by"])
            for r in remediations_on(settings, p)}
    assert rows == {waiting.remediation_id: ("awaiting_approval", "alice"),
                    other.remediation_id: ("requested", None),
                    defaulted.remediation_id: ("awaiting_approval", "carol")}
    listed = cli("remediation", "list", "--status", "awaiting_approval", "--limit", "100000")
    [line] = [x for x in listed.stdout.splitlines() if waiting.remediation_id in x]
    for cell in (inc, "2026-12-01T18:00:02.000Z", "awaiting_approval", "approval", "alice"):
        assert cell in line
    timeline = cli_json("incidents", "show", inc)["timeline"]
    assert sorted((e["kind"], e["detail"]["remediation_id"], e["detail"]["by"])
                  for e in timeline) == [
        ("approval", defaulted.remediation_id, "carol"),
        ("approval", waiting.remediation_id, "alice")]


def test_a_worker_write_from_before_the_approval_keeps_it(dsn: str) -> None:
    """The worker saves whole rows it read earlier (a tick following an incident, a
    drop): such a row, stale since the approval, must not erase it."""
    p = prefix()
    inc = f"inc-{p}db"
    waiting = remediation(p, "wait", inc, "awaiting_approval", guard="approval")
    write_incidents(dsn, [IncidentRow(inc, "open", T0, T0, "critical", "db")], [], [waiting])
    assert cli("remediation", "approve", waiting.remediation_id, "--by", "alice").exit_code == 0

    async def stale_save() -> list[RemediationRow]:
        store = IncidentStore(dsn)
        await store.setup()
        try:
            await store.save_remediation(replace(waiting, reason="read before the approval"))
            return await store.remediations(ids=[waiting.remediation_id])
        finally:
            await store.close()

    [row] = asyncio.run(stale_save())
    assert (row.reason, row.approved_by) == ("read before the approval", "alice")


def test_pause_and_resume_are_recorded(dsn: str, resumed: None) -> None:
    paused = cli("remediation", "pause", "--reason", "network maintenance", "--by", "alice")
    assert paused.exit_code == 0, paused.output
    assert "remediation paused by alice" in paused.stdout
    state = pause_state(dsn)
    assert state is not None and (state.paused, state.by, state.reason) == (
        True, "alice", "network maintenance")
    assert asyncio.run(store_paused(dsn))  # what the worker reads
    listed = cli_json("remediation", "list", "--status", "deferred")
    assert (listed["paused"]["by"], listed["paused"]["reason"]) == ("alice", "network maintenance")
    again = cli("remediation", "pause", "--by", "bob")
    assert again.exit_code == 0 and "paused already (by alice" in again.stdout

    back = cli("remediation", "resume", USER="carol")
    assert back.exit_code == 0 and "remediation resumed by carol" in back.stdout
    assert not asyncio.run(store_paused(dsn))
    assert cli_json("remediation", "list")["paused"] is None
    assert "is not paused (resumed by carol" in cli("remediation", "resume").stdout


async def store_paused(dsn: str) -> bool:
    store = IncidentStore(dsn)
    await store.setup()
    try:
        return await store.paused()
    finally:
        await store.close()


# --- through Kafka: the healing worker reads what the operator writes ---------------------


def gate_memory_leak_on_web(node: Any) -> int:
    """Make the playbooks of a memory leak on a web server require approval; how many."""
    if isinstance(node, list):
        return sum(gate_memory_leak_on_web(item) for item in node)
    if not isinstance(node, dict):
        return 0
    gated = 0
    if "memory_leak" in node.get("issue_types", []) and "web" in node.get("asset_types", []):
        node["requires_approval"], gated = True, 1
    return gated + sum(gate_memory_leak_on_web(value) for value in node.values())


def approval_gated_playbooks(tmp_path: Path) -> Path:
    """The packaged playbook set (the YAML files beside :mod:`.playbooks`, whatever
    their directory is called), with the memory-leak-on-web playbooks gated."""
    out = tmp_path / "playbooks"
    out.mkdir()
    gated = 0
    for path in sorted(Path(playbooks.__file__).parent.glob("*/*.y*ml")):
        doc = yaml.safe_load(path.read_text())
        gated += gate_memory_leak_on_web(doc)
        (out / path.name).write_text(yaml.safe_dump(doc))
    assert gated, "no packaged playbook heals a memory leak on a web server"
    return out


def leaking_web_server(settings: Any, producer: Any, poll: Any, p: str) -> str:
    """A web server (with a healthy peer) whose memory climbed for an hour: stored."""
    web = f"{p}web-01"
    build_estate(settings, producer, poll, [(web, "web", f"{p}frontend"),
                                            (f"{p}web-02", "web", f"{p}frontend")])
    history = leak_history(web, now_ms() - 1000)
    produce(producer, "metrics.raw", history)
    poll(lambda: store_rows(settings, "SELECT count(*) AS n FROM metrics_raw WHERE source = %s",
                            web)[0]["n"] >= len(history), "the leak's samples stored")
    return web


def published(ex: Any, remediation_id: str, status: str) -> list[dict[str, Any]]:
    return [e for e in ex.of("remediation", status)
            if e["attributes"]["remediation_id"] == remediation_id]


def test_an_approval_gated_remediation_waits_for_approve(
        settings: Any, producer: Any, start_worker: Any, poll: Any, tmp_path: Path) -> None:
    p = prefix()
    start_workers(start_worker, DHARMA_HEALING_PLAYBOOK_DIR=str(approval_gated_playbooks(
        tmp_path)))
    web = leaking_web_server(settings, producer, poll, p)
    with executor(settings, producer, {web}) as ex:
        produce(producer, ALERTS, [alert(web, f"High Memory Usage on {web}")])
        waiting = poll(lambda: ex.of("remediation", "awaiting_approval"),
                       "the remediation awaiting approval published",
                       describe=lambda: f"remediations {remediations_on(settings, p)}")
        rid = waiting[0]["attributes"]["remediation_id"]
        assert waiting[0]["attributes"]["guard"] == "approval" and not ex.requests

        approved = cli("remediation", "approve", rid, "--by", "alice")
        assert approved.exit_code == 0, approved.output
        [request] = poll(lambda: published(ex, rid, "requested"), "the approved request",
                         describe=lambda: f"remediations {remediations_on(settings, p)}")
    assert (request["attributes"]["action"], request["attributes"]["attempt"]) == (
        "restart_service", 1)
    [row] = remediations_on(settings, p)
    assert (row["remediation_id"], row["approved_by"]) == (rid, "alice")
    timeline = cli_json("incidents", "show", row["incident_id"])["timeline"]
    [approval] = [e for e in timeline if e["kind"] == "approval"]
    [decided] = [e for e in timeline if e["kind"] == "decision"
                 and e["detail"]["status"] == "requested"]
    assert approval["detail"]["by"] == "alice" and decided["at"] >= approval["at"]


def test_a_pause_defers_a_remediation_until_resume(
        settings: Any, producer: Any, start_worker: Any, poll: Any, dsn: str,
        resumed: None) -> None:
    p = prefix()
    start_workers(start_worker)
    web = leaking_web_server(settings, producer, poll, p)
    assert cli("remediation", "pause", "--reason", "test", "--by", "alice").exit_code == 0
    with executor(settings, producer, {web}) as ex:
        produce(producer, ALERTS, [alert(web, f"High Memory Usage on {web}")])
        deferred = poll(lambda: ex.of("remediation", "deferred"), "the deferral published",
                        describe=lambda: f"remediations {remediations_on(settings, p)}")
        rid = deferred[0]["attributes"]["remediation_id"]
        assert deferred[0]["attributes"]["guard"] == "paused" and not ex.requests
        listed = cli_json("remediation", "list", "--status", "deferred", "--limit", "100000")
        assert rid in {r["remediation_id"] for r in listed["remediations"]}

        resumed_now = cli("remediation", "resume", "--by", "alice")
        assert resumed_now.exit_code == 0, resumed_now.output
        [request] = poll(lambda: published(ex, rid, "requested"), "the request after resume",
                         describe=lambda: f"remediations {remediations_on(settings, p)}")
    assert request["attributes"]["action"] == "restart_service"
