"""The guards against the real stack: idempotency across repeats and a SIGKILL, the
circuit breaker, chaos experiments, deployments, the execution lease, a failed
verification; and the root cause the CMDB gives.  One set of workers serves the
module; each test works on its own estate (prefix and team)."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from healing_support import (
    ALERTS,
    INFRA,
    alert,
    build_estate,
    executor,
    incidents_on,
    infra,
    leak_history,
    prefix,
    produce,
    remediations_on,
    sample,
    store_rows,
)

from dharma.streams.alerting import alert_record
from dharma.streams.records import now_ms
from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration


def anomaly_alert(source: str, metric: str, status: str) -> dict[str, Any]:
    """An alert as the anomaly capability raises it: its metric, no threshold."""
    return alert_record(kind="anomaly", component="anomaly", source=source, subject=metric,
                        status=status, severity="warning",  # type: ignore[arg-type]
                        summary=f"{metric} on {source} is anomalous", ts=now_ms(),
                        episode_start=now_ms(), labels={"metric": metric})


def web_group(settings: Any, producer: Any, poll: Any, p: str, size: int = 5,
              asset_type: str = "web") -> list[str]:
    """``size`` assets of one type and team; the first one is the test's target."""
    ids = [f"{p}{asset_type}-{i:02d}" for i in range(1, size + 1)]
    build_estate(settings, producer, poll, [(rid, asset_type, f"{p}team") for rid in ids])
    return ids


def leaking(settings: Any, producer: Any, poll: Any, source: str) -> None:
    """An hour of memory climbing on ``source``, stored before its alert."""
    history = leak_history(source, now_ms() - 1000)
    produce(producer, "metrics.raw", history)
    poll(lambda: store_rows(settings, "SELECT count(*) AS n FROM metrics_raw WHERE source = %s",
                            source)[0]["n"] >= len(history), "the leak's samples stored")


def published(tail: Tailer, seen: list[dict[str, Any]], prefix_: str) -> list[dict[str, Any]]:
    """Everything read so far from ``tail`` about the test's resources."""
    for _topic, record in tail.poll(0.2):
        if str(record.get("resource_id") or record.get("source")).startswith(prefix_):
            seen.append(record)
    return seen


def drained(tail: Tailer, seen: list[dict[str, Any]], prefix_: str) -> list[dict[str, Any]]:
    """Everything published so far: read until a poll finds nothing more."""
    while read := tail.poll(0.5):
        seen += [r for _t, r in read
                 if str(r.get("resource_id") or r.get("source")).startswith(prefix_)]
    return seen


def remediation_events(seen: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    return [e for e in seen if e.get("type") == "remediation"
            and e["attributes"]["status"] == status]


def escalations(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in seen if e.get("kind") == "escalation"]


def test_the_same_alert_five_times_and_after_a_sigkill_requests_one_remediation(
        settings: Any, producer: Any, poll: Any, healing_workers: Any) -> None:
    p = prefix()
    target = web_group(settings, producer, poll, p)[0]
    leaking(settings, producer, poll, target)
    repeated = alert(target, f"High Memory Usage on {target}")
    seen: list[dict[str, Any]] = []
    with Tailer(settings, [INFRA], from_beginning=True) as tail:
        produce(producer, ALERTS, [repeated] * 5)
        poll(lambda: remediation_events(published(tail, seen, p), "requested"),
             "the remediation requested")
        healing_workers.restart_healing(signal.SIGKILL)
        produce(producer, ALERTS, [repeated])
        later = alert(target, f"High Memory Usage on {target}", value=95)
        produce(producer, ALERTS, [later])
        poll(lambda: store_rows(settings, "SELECT 1 FROM incident_timeline WHERE key = %s",
                                f"alert:{later['alert_id']}"), "the restarted worker caught up")
        drained(tail, seen, p)
    requested = remediation_events(seen, "requested")
    assert len({e["attributes"]["remediation_id"] for e in requested}) == 1
    assert [r["status"] for r in remediations_on(settings, p)] == ["requested"]
    assert len(incidents_on(settings, p)) == 1


def test_an_alert_storm_on_six_of_ten_members_remediates_none_and_escalates_once(
        settings: Any, producer: Any, poll: Any, healing_workers: Any) -> None:
    p = prefix()
    members = web_group(settings, producer, poll, p, size=10)
    seen: list[dict[str, Any]] = []
    with Tailer(settings, [INFRA, ALERTS], from_beginning=True) as tail:
        produce(producer, ALERTS, [alert(m, f"High Memory Usage on {m}") for m in members[:6]])
        poll(lambda: len(remediations_on(settings, p)) == 6
             and all(r["published"] == "skipped" for r in remediations_on(settings, p)),
             "six decisions published", describe=lambda: str(remediations_on(settings, p)))
        poll(lambda: escalations(published(tail, seen, p)), "the group escalated")
        poll(lambda: len(remediation_events(published(tail, seen, p), "skipped")) == 6,
             "six skips published")
    assert {r["guard"] for r in remediations_on(settings, p)} == {"circuit_breaker"}
    assert remediation_events(seen, "requested") == []
    [escalation] = escalations(seen)
    assert escalation["severity"] == "critical" and "6 of 10" in escalation["summary"]


def test_a_target_inside_a_running_chaos_experiment_is_not_remediated(
        settings: Any, producer: Any, poll: Any, healing_workers: Any) -> None:
    p = prefix()
    target, other = web_group(settings, producer, poll, p)[:2]
    leaking(settings, producer, poll, target)
    produce(producer, INFRA, [infra("chaos_experiment", other, {
        "experiment_id": f"{p}exp", "fault": "latency", "status": "started",
        "duration_s": 600, "blast_radius": [target]})])
    produce(producer, ALERTS, [alert(target, f"High Memory Usage on {target}")])
    poll(lambda: [r for r in remediations_on(settings, p) if r["published"] == "skipped"],
         "the decision published")
    [remediation] = remediations_on(settings, p)
    assert (remediation["status"], remediation["guard"]) == ("skipped", "chaos_experiment")
    [incident] = incidents_on(settings, p)
    assert incident["annotations"] == [f"not remediated: inside chaos experiment {p}exp"]


def test_a_deployment_in_progress_defers_the_remediation_until_it_ends(
        settings: Any, producer: Any, poll: Any, healing_workers: Any) -> None:
    p = prefix()
    target = web_group(settings, producer, poll, p)[0]
    leaking(settings, producer, poll, target)
    deployment = {"deployment_id": f"{p}dep", "version": "1.2.0", "previous_version": "1.1.9",
                  "initiator": "ci-pipeline"}
    seen: list[dict[str, Any]] = []
    with Tailer(settings, [INFRA], from_beginning=True) as tail:
        produce(producer, INFRA, [infra("deployment", target, {**deployment,
                                                                "status": "started"})])
        produce(producer, ALERTS, [alert(target, f"High Memory Usage on {target}")])
        poll(lambda: remediation_events(published(tail, seen, p), "deferred"),
             "the remediation deferred")
        assert remediation_events(seen, "requested") == []
        produce(producer, INFRA, [infra("deployment", target, {**deployment,
                                                                "status": "succeeded"})])
        poll(lambda: remediation_events(published(tail, seen, p), "requested"),
             "the remediation requested once the deployment ended")
    [deferred] = remediation_events(seen, "deferred")
    assert deferred["attributes"]["guard"] == "deployment"
    assert f"{p}dep" in deferred["attributes"]["reason"]


def test_a_failed_verification_rolls_back_and_escalates(
        settings: Any, producer: Any, poll: Any, healing_workers: Any) -> None:
    p = prefix()
    target = web_group(settings, producer, poll, p)[0]
    leaking(settings, producer, poll, target)

    def still_leaking(_request: dict[str, Any]) -> None:
        produce(producer, "metrics.raw", [sample(target, "memory_utilization", 93.0, now_ms())])

    seen: list[dict[str, Any]] = []
    with Tailer(settings, [ALERTS], from_beginning=True) as tail, \
            executor(settings, producer, {target}, on_success=still_leaking) as ex:
        produce(producer, ALERTS, [alert(target, f"High Memory Usage on {target}")])
        def rolled_back() -> bool:
            if ex.requests:  # memory stays high after the restart, sampled as it goes
                still_leaking(ex.requests[0])
            return len(ex.requests) == 2

        poll(rolled_back, "the rollback requested")
        poll(lambda: escalations(published(tail, seen, p)), "the incident escalated")
    first, rollback = ex.requests
    assert first["attributes"]["action"] == "restart_service"
    assert (rollback["attributes"]["action"], rollback["attributes"]["rollback_of"]) == (
        "notify", first["attributes"]["remediation_id"])
    [remediation, _] = remediations_on(settings, p)
    assert remediation["outcome"] == "verification_failed"
    [incident] = incidents_on(settings, p)
    assert incident["status"] == "acknowledged"  # stays open for the on-call engineer
    assert "memory_utilization still at 93" in escalations(seen)[0]["summary"]


def test_an_execution_that_reports_nothing_is_failed_and_escalated_when_its_lease_ends(
        settings: Any, producer: Any, poll: Any, healing_workers: Any) -> None:
    p = prefix()
    target = web_group(settings, producer, poll, p, asset_type="batch")[0]
    leaking(settings, producer, poll, target)
    seen: list[dict[str, Any]] = []
    with Tailer(settings, [INFRA, ALERTS], from_beginning=True) as tail:
        produce(producer, ALERTS, [alert(target, f"High Memory Usage on {target}")])
        poll(lambda: remediation_events(published(tail, seen, p), "failed"),
             "the remediation failed at the end of its lease")
        poll(lambda: escalations(published(tail, seen, p)), "the failure escalated")
    [failed] = remediation_events(seen, "failed")
    assert failed["attributes"]["guard"] == "lease"


def test_a_database_and_three_services_on_it_make_one_incident_rooted_at_the_database(
        settings: Any, producer: Any, poll: Any, healing_workers: Any) -> None:
    p = prefix()
    db, services = f"{p}db-01", [f"{p}api-{i}" for i in range(1, 4)]
    build_estate(settings, producer, poll,
                 [(db, "db", f"{p}data")] + [(s, "app", f"{p}team") for s in services],
                 edges=[(s, db) for s in services])
    # the services complain first, the database last: the worst order for grouping
    produce(producer, ALERTS, [alert(s, f"Latency up on {s}", metric="request_latency_ms",
                                     threshold=250, value=900, severity="warning")
                               for s in services])
    produce(producer, ALERTS, [alert(db, f"High Memory Usage on {db}")])
    poll(lambda: [i for i in incidents_on(settings, p) if i["status"] != "pending"],
         "the incident opened")
    [incident] = incidents_on(settings, p)
    assert (incident["root"], incident["symptoms"]) == (db, services)
    [remediation] = remediations_on(settings, p)
    assert (remediation["target"], remediation["action"]) == (db, "restart_service")


def test_a_dependency_that_began_alerting_later_is_a_symptom_not_the_root(
        settings: Any, producer: Any, poll: Any, healing_workers: Any) -> None:
    p = prefix()
    web, db = f"{p}web-01", f"{p}db-01"
    build_estate(settings, producer, poll, [(web, "web", f"{p}team"), (db, "db", f"{p}data")],
                 edges=[(web, db)])
    leaking(settings, producer, poll, web)
    # the worst order: the later alert arrives first and opens the incident
    produce(producer, ALERTS, [alert(db, f"CPU up on {db}", metric="cpu_utilization")])
    poll(lambda: incidents_on(settings, p), "the database's incident collecting alerts")
    produce(producer, ALERTS, [alert(web, f"High Memory Usage on {web}", ts=now_ms() - 60_000)])
    poll(lambda: [i for i in incidents_on(settings, p) if i["status"] != "pending"],
         "the incident opened")
    [incident] = incidents_on(settings, p)
    assert (incident["root"], incident["symptoms"]) == (web, [db])
    [remediation] = remediations_on(settings, p)
    assert (remediation["target"], remediation["action"]) == (web, "restart_service")


def test_a_remediation_that_verifies_nothing_leaves_the_incident_open_until_its_alerts_end(
        settings: Any, producer: Any, poll: Any, healing_workers: Any) -> None:
    p = prefix()
    queue = web_group(settings, producer, poll, p, asset_type="queue")[0]
    # an anomaly alert: a metric, no threshold, so the fallback playbook watches nothing
    firing = anomaly_alert(queue, "queue_depth", "firing")
    with executor(settings, producer, {queue}) as ex:
        produce(producer, ALERTS, [firing])
        poll(lambda: [r for r in remediations_on(settings, p) if r["outcome"] == "unverified"],
             "the notification ran, nothing verified")
        assert [r["attributes"]["action"] for r in ex.requests] == ["notify"]
    assert [i["status"] for i in incidents_on(settings, p)] == ["acknowledged"]
    ended = anomaly_alert(queue, "queue_depth", "resolved")
    produce(producer, ALERTS, [ended])
    poll(lambda: [i["status"] for i in incidents_on(settings, p)] == ["resolved"],
         "resolved once its alert ended")


def test_bad_input_and_forged_reports_are_dead_lettered_with_the_reason(
        settings: Any, producer: Any, poll: Any, healing_workers: Any) -> None:
    p = prefix()
    target = web_group(settings, producer, poll, p)[0]
    leaking(settings, producer, poll, target)
    produce(producer, ALERTS, [alert(target, f"High Memory Usage on {target}")])
    poll(lambda: [r for r in remediations_on(settings, p) if r["published"] == "requested"],
         "the remediation requested")
    [remediation] = remediations_on(settings, p)
    forged = infra("remediation", f"{p}web-02", {
        "remediation_id": remediation["remediation_id"], "action": "restart_service",
        "status": "succeeded", "reason": "forged", "incident_id": remediation["incident_id"]})
    future = alert(f"{p}web-03", "from the future", ts=now_ms() + 3_600_000)
    hidden = alert(f"{p}web\u200b-04", "an invisible character in the source")
    with Tailer(settings, [f"{INFRA}.dlq", f"{ALERTS}.dlq"], from_beginning=True) as dlq:
        produce(producer, INFRA, [forged])
        produce(producer, ALERTS, [future, hidden])
        letters: list[dict[str, Any]] = []

        def ours() -> list[dict[str, Any]]:
            letters.extend(r for _t, r in dlq.poll(0.2)
                           if p.encode() in (r["original_value"] or b""))
            return letters

        poll(lambda: len(ours()) == 3, "three dead letters")
    reasons = sorted(letter["reason"] for letter in letters)
    assert any("names " in r and "not " in r for r in reasons)
    assert any("later than the worker's clock" in r for r in reasons)
    assert [r["status"] for r in remediations_on(settings, p)] == ["requested"]
