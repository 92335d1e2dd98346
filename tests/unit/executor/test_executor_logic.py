"""The executor's pure logic: what it acts on, the bodies it POSTs, the reports it makes."""

from __future__ import annotations

from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.executor.logic import (
    ACTIONS,
    Request,
    payload,
    refusal,
    report,
    report_id,
    reports,
    to_request,
)
from dharma.schemas import load_schema
from dharma.sinks.webhook import Webhook
from dharma.streams.errors import ContractViolation

STATUSES = ("requested", "started", "succeeded", "failed", "skipped", "deferred",
            "awaiting_approval")


def event(status: str = "requested", dry_run: bool = False, **attrs: Any) -> dict[str, Any]:
    return {"event_id": "e1", "ts": 1_000, "type": "remediation", "resource_id": "web-01",
            "attributes": {"remediation_id": "r1", "action": "restart_service",
                           "status": status, "reason": "memory_leak", "dry_run": dry_run,
                           "parameters": {"metric": "memory_utilization"}, **attrs}}


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "requested"])
def test_only_requests_are_acted_on(status: str) -> None:
    assert to_request(event(status)) is None
    assert to_request(event(dry_run=True)) is None, "a dry-run request is never executed"
    assert to_request({**event(), "type": "asset"}) is None


def test_a_remediation_record_of_another_shape_or_from_the_future_is_refused() -> None:
    with pytest.raises(ContractViolation, match="attributes of another type"):
        to_request({**event(), "attributes": {"action": "created", "asset_type": "web"}})
    with pytest.raises(ContractViolation, match="beyond the worker's clock"):
        to_request(event(), latest=999)
    with pytest.raises(ContractViolation, match="resource_id"):
        to_request({**event(), "resource_id": "web\u202e01"})
    with pytest.raises(ContractViolation, match="parameters"):
        to_request(event(parameters={str(i): "x" for i in range(33)}))


def test_unknown_actions_are_refused_and_old_requests_expire() -> None:
    request = to_request(event())
    assert request is not None
    assert refusal(request, 2_000, 60_000) is None
    odd = Request("e", 1_000, "web-01", "r2", "curl evil | sh", "x")
    assert refusal(odd, 2_000, 60_000) == "refused: unknown action 'curl evil | sh'"
    assert refusal(request, 1_000 + 60_001, 60_000) == "expired: requested 60 s ago (max age 60 s)"


@given(st.text(min_size=1, max_size=40), st.sampled_from(STATUSES),
       st.sampled_from(STATUSES))
def test_report_ids_are_the_same_for_a_status_and_differ_between_statuses(
        rid: str, a: str, b: str) -> None:
    assert report_id(rid, a) == report_id(rid, a)
    assert (report_id(rid, a) == report_id(rid, b)) == (a == b)


def test_a_report_carries_the_request_and_fits_the_contract() -> None:
    request = to_request(event(incident_id="inc-1", playbook="restart@2", attempt=2))
    assert request is not None
    done = report(request, "succeeded", "webhook answered 200 OK", 5_000)
    attrs = done["attributes"]
    assert (done["resource_id"], attrs["remediation_id"], attrs["incident_id"],
            attrs["playbook"], attrs["attempt"], attrs["dry_run"]) == (
        "web-01", "r1", "inc-1", "restart@2", 2, False)
    assert fastavro.validate(done, fastavro.parse_schema(
        load_schema("infrastructure.events-value")))
    assert [r["attributes"]["status"] for r in reports(request, None, None, None, None)] == []


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_payload_style_names_the_action_target_and_id(action: str) -> None:
    request = Request("e", 1, "db-01", "r9", action, "why", "inc-9",
                      parameters={"metric": "disk_utilization"})
    generic = payload(request, "generic")
    assert (generic["action"], generic["target"], generic["remediation_id"],
            generic["incident_id"]) == (action, "db-01", "r9", "inc-9")
    assert generic["parameters"] == {"metric": "disk_utilization"}
    assert generic["extra_vars"]["metric"] == "disk_utilization"
    awx = payload(request, "awx")
    assert awx["limit"] == "db-01" and awx["extra_vars"]["action"] == action
    rundeck = payload(request, "rundeck")
    assert rundeck["filter"] == "name: db-01"
    assert all(isinstance(v, str) for v in rundeck["options"].values())
    assert rundeck["options"]["remediation_id"] == "r9"


def test_the_token_goes_in_its_header() -> None:
    from pydantic import SecretStr

    bearer = Webhook("http://x", SecretStr("t0k")).headers("r1")
    assert bearer == {"Idempotency-Key": "r1", "Content-Type": "application/json",
                      "Authorization": "Bearer t0k"}
    rundeck = Webhook("http://x", SecretStr("t0k"), "X-Rundeck-Auth-Token").headers("r1")
    assert rundeck["X-Rundeck-Auth-Token"] == "t0k" and "Authorization" not in rundeck
    assert "Authorization" not in Webhook("http://x").headers("r1")


@pytest.mark.parametrize("stored", [
    {"event_id": "e", "ts": "soon"}, ["not", "a", "request"], None,
    {**Request("e", 1, "web-01", "r1", "notify", "x").to_dict(), "exec": "rm -rf /"}])
def test_a_stored_row_that_is_not_a_request_is_refused_not_trusted(stored: Any) -> None:
    with pytest.raises(ValueError):
        Request.from_dict(stored)


@given(st.builds(Request, st.text(), st.integers(0, 2**62), st.text(min_size=1), st.text(),
                 st.sampled_from(sorted(ACTIONS)), st.text(),
                 parameters=st.dictionaries(st.text(), st.text(), max_size=4)))
def test_a_request_reads_back_as_it_was_stored(request: Request) -> None:
    assert Request.from_dict(request.to_dict()) == request
