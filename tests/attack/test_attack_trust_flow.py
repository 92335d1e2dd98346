"""Red-team findings on the zero-trust flow, through the real stack and trust worker.

Each test is evidence of a finding: its docstring gives the threat, the steps,
what happens today and what should happen.  They are strict xfails so the suite
stays green until the finding is fixed (then the xfail marker must go).

Requests are the seed's (``trust_helpers.seed_event``: an admin with MFA on a
compliant device, from 10.0.1.50, reading ``database/production/customer_db``),
dated a few seconds ago: fresh for the worker's clock.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import pytest
from confluent_kafka import Producer
from trust_helpers import Outputs, audit_rows, recent, seed_event
from trust_servers import own_postgres

from dharma.infra.stack.process import ManagedProcess
from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer

pytestmark = pytest.mark.integration

#: How long an enforcement point may wait for a decision while a store stalls: the
#: sinks' own retries give up after about 5 s.
DECISION_DEADLINE_S = 45.0


@pytest.fixture
def send(settings: Any) -> Callable[..., None]:
    """Produce ``audit.logs`` records (keyed by their user unless ``key`` is given) and
    wait for the broker."""
    producer = AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))

    def produce(*events: dict[str, Any], key: str | None = None) -> None:
        for event in events:
            producer.produce("audit.logs", key or event["user_id"], event)
        producer.flush()

    return produce


def decided(outputs: Outputs, poll: Any, event_id: str, what: str, **match: Any) -> dict[str, Any]:
    """The first decision about ``event_id`` (matching ``match``) to arrive."""
    (decision, _), *_ = poll(lambda: outputs.decisions(event_id=event_id, **match), what)
    return decision


def update(event_id: str, user: str, device: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A posture update or risk signal about ``user`` on ``device``, dated just now."""
    return seed_event(event_id, recent(5), user_id=user, resource="", action="", device=device,
                      **fields)


@contextmanager
def frozen(process: ManagedProcess) -> Iterator[None]:
    """SIGSTOP a server of the test's own and its children (a stalled host, a partition
    without resets): connections stay open, nothing answers.  Resumed afterwards."""
    root = psutil.Process(process.pid())
    family = [root, *root.children(recursive=True)]
    for proc in family:
        proc.suspend()
    try:
        yield
    finally:
        for proc in family:
            proc.resume()


def test_an_allow_under_a_reused_event_id_has_its_own_audit_row(
        settings: Any, send: Any, outputs: Any, start_worker: Any, poll: Any) -> None:
    """Threat: ``event_id`` is the requester's choice; an insider (or a buggy PEP that
    reuses ids) sends a request under the id of an earlier, harmless ALLOW.

    Steps: a viewer reads ``dashboards/ops/overview`` as ``evt-reuse-X`` (ALLOW, audited);
    then an admin *writes* ``database/production/customer_db`` under the same id.

    Happens: the write is ALLOWed and emitted, and the audit trail holds only the
    viewer's dashboard read: decision and session ids are UUID5s of the event id alone,
    so the write's row collides with the read's (``ON CONFLICT DO NOTHING``) and
    ``_CONFIRM`` (``sinks/audit.py``) accepts it because it compares only ``event_id``
    and ``session_id`` -- both functions of that same id. (The write's session is not
    opened -- its ``:opened`` marker exists -- but the PEP already has its ALLOW.) The
    same holds for two requests with one id in one batch.

    Should: no ALLOW leaves the worker without a row describing it: the confirmation
    compares the stored row with the decision (user, device, resource, action, policy,
    ts) -- otherwise ``audit_conflict`` -- or decision ids derive from the request's
    content or log position, not from an id the requester picks.
    """
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    event_id, viewer, admin = f"evt-reuse-{tag}", f"reuse_viewer_{tag}", f"reuse_admin_{tag}"
    send(seed_event(event_id, recent(30), user_id=viewer, roles=["viewer"],
                    resource="dashboards/ops/overview", device={"device_id": f"rv_{tag}"}))
    assert decided(outputs, poll, event_id, "the read", user_id=viewer)["decision"] == "ALLOW"

    send(seed_event(event_id, recent(20), user_id=admin, roles=["admin", "dba"], action="write",
                    device={"device_id": f"ra_{tag}"}))
    write = decided(outputs, poll, event_id, "the write", user_id=admin)
    rows = audit_rows(settings, event_id)
    assert write["decision"] != "ALLOW" or any(
        (r["user_id"], r["action"], r["decision"]) == (admin, "write", "ALLOW") for r in rows), rows


def test_a_stalled_postgres_still_yields_a_decision(pick_port: Any, send: Any, outputs: Any,
                                                    start_worker: Any, poll: Any) -> None:
    """Threat: PostgreSQL stops answering without closing connections (a frozen VM, a
    failover in progress, a network partition that drops packets, a lock an operator
    holds on ``access_audit``).

    Steps: a PostgreSQL of the test's own; one request (ALLOW, the worker connected);
    the server's processes are SIGSTOPped; a second request.

    Happens: no decision at all within 45 s (nor ever, until the server resumes): the
    audit append (``AuditSink.append`` -> ``BatchSink.call``) has retries for errors but
    no timeout, and psycopg waits on the open connection for ever; the batch never ends,
    so the PEP that sent the request waits for ever and every later request of the
    partition queues behind it.  The ingest worker's metrics sink has the same shape.

    Should: every store call is bounded in time (a statement/connect timeout, or
    ``asyncio.wait_for`` in ``BatchSink.call``) and a stalled PostgreSQL is an outage:
    DENY ``audit_unavailable`` at once, as for a stopped one.
    """
    tag = uuid.uuid4().hex[:8]
    user, device = f"pgstall_{tag}", {"device_id": f"pgstall_dev_{tag}"}
    with own_postgres(pick_port()) as pg:
        worker = start_worker("trust", DHARMA_POSTGRES_DSN=pg.url)
        send(seed_event(f"evt-pgstall-0-{tag}", recent(30), user_id=user, device=device))
        assert decided(outputs, poll, f"evt-pgstall-0-{tag}", "before")["decision"] == "ALLOW"
        with frozen(pg.service.process):
            send(seed_event(f"evt-pgstall-1-{tag}", recent(5), user_id=user, device=device))
            (denied, _), *_ = poll(lambda: outputs.decisions(event_id=f"evt-pgstall-1-{tag}"),
                                   "a decision while PostgreSQL stalls",
                                   timeout=DECISION_DEADLINE_S)
        assert (denied["decision"], denied["reasons"][0]) == ("DENY", "audit_unavailable")
        # done with the worker: killed, as one holding a batch takes up to its outage
        # limit to stop on SIGTERM (docs/deployment.md) and loses nothing when killed
        worker.stop(signal.SIGKILL)


def test_a_compromised_account_is_not_allowed_straight_back_in(
        send: Any, outputs: Any, start_worker: Any, poll: Any) -> None:
    """Threat: the SOC raises ``risk_signal: account_compromise`` (or ``credential_leak``,
    ``session_hijack``) for a user; the attacker holding the credentials simply asks again.

    Steps: an ALLOW; the risk signal (its REVOKE arrives); a new request, same user and
    device, a second later.

    Happens: ALLOW, by pol_001, at 93.05 -- the same score as before the signal.  A risk
    signal only revokes live sessions and takes 20 off the behaviour score
    (``behaviour.py``), which the user factor never sees once MFA and a recent
    authentication have capped it at 100 (``scoring.user_trust``); nothing remembers that
    the account is compromised.

    Should: after a critical risk signal the user's requests are DENYed (or at least
    CHALLENGEd for a fresh step-up authentication newer than the signal) until it is
    cleared or a configured period passes.
    """
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, device = f"pwned_{tag}", {"device_id": f"pwned_dev_{tag}"}
    send(seed_event(f"evt-pwned-0-{tag}", recent(40), user_id=user, device=device))
    allow = decided(outputs, poll, f"evt-pwned-0-{tag}", "ALLOW")
    assert allow["decision"] == "ALLOW"
    send(update(f"evt-pwned-risk-{tag}", user, device, event_type="risk_signal",
                risk_reason="account_compromise"))
    assert decided(outputs, poll, f"evt-pwned-risk-{tag}", "REVOKE")["decision"] == "REVOKE"
    send(seed_event(f"evt-pwned-1-{tag}", recent(1), user_id=user, device=device))
    assert decided(outputs, poll, f"evt-pwned-1-{tag}", "again")["decision"] != "ALLOW"


def test_a_device_reported_non_compliant_cannot_claim_compliance_back(
        send: Any, outputs: Any, start_worker: Any, poll: Any) -> None:
    """Threat: the MDM reports a device unencrypted, no firewall or antivirus, patches
    outdated, compliance 10; the device's next request reports the posture it likes (the
    request's ``device`` is the requester's claim).

    Steps: the ``posture_update``, then, on the same partition just after it, a request
    from that device claiming compliance 95, encrypted, firewall, antivirus, latest.

    Happens: ALLOW.  A posture update only re-evaluates the sessions live at that moment
    (``pipeline.rechecks``); the reported posture is kept nowhere, so any later request,
    or one from another partition processed a moment after the update (a session opened
    just after the revocation sweep), is decided on its own claim.

    Should: the worker keeps the latest reported posture per device (for at least a
    session lifetime) and decides a request on the worse of the two, component by
    component; this request is DENYed.
    """
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, device = f"mdm_{tag}", f"mdm_dev_{tag}"
    bad = {"device_id": device, "encrypted": False, "firewall": False, "antivirus": False,
           "compliance_score": 10.0, "patch_level": "outdated"}
    send(update(f"evt-mdm-{tag}", user, bad, event_type="posture_update"),
         seed_event(f"evt-mdm-claim-{tag}", recent(1), user_id=user,
                    device={"device_id": device}))
    assert decided(outputs, poll, f"evt-mdm-claim-{tag}", "the claim")["decision"] != "ALLOW"


def test_a_replayed_allow_of_a_revoked_session_is_not_emitted_as_allow(
        send: Any, outputs: Any, start_worker: Any, poll: Any) -> None:
    """Threat: an attacker re-sends a captured ``audit.logs`` record within its freshness
    window, after the session it opened was revoked.

    Steps: an ALLOW; a ``credential_leak`` risk signal (REVOKE); the same record again.

    Happens: the replay is decided ALLOW again and emitted on ``ml.predictions`` with
    ``expires_in`` 900 and the revoked ``session_id``, dated after the REVOKE.  The
    session is not reopened (its ``:revoked`` marker holds), but ``open_sessions``
    ignores how many opened: a PEP or cache that takes the latest decision of a session
    or request as the truth lets the attacker back in for 15 minutes.

    Should: an ALLOW whose session the store refuses to open (revoked, or opened before
    by a different request) is emitted as DENY with a stable reason (e.g.
    ``session_revoked``), as the fail-closed paths do.
    """
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, device = f"replay_{tag}", {"device_id": f"replay_dev_{tag}"}
    original = seed_event(f"evt-replay-{tag}", recent(40), user_id=user, device=device)
    send(original)
    assert decided(outputs, poll, original["event_id"], "ALLOW")["decision"] == "ALLOW"
    send(update(f"evt-replay-leak-{tag}", user, device, event_type="risk_signal",
                risk_reason="credential_leak"))
    assert decided(outputs, poll, f"evt-replay-leak-{tag}", "REVOKE")["decision"] == "REVOKE"
    send(original)
    (_, _), (replayed, _) = poll(
        lambda: (found := outputs.decisions(event_id=original["event_id"]))[1:] and found,
        "the replay decided")
    assert replayed["decision"] != "ALLOW"


def test_an_allow_turned_into_deny_teaches_nothing(
        settings: Any, send: Any, outputs: Any, start_worker: Any, poll: Any,
        read_changelog: Any) -> None:
    """Threat: a request from a new device is refused by the pipeline after the engine
    allowed it; the behaviour table should not learn that device (issue #10 item 6: a
    DENY must not teach the behaviour table that an unknown device is now known).

    Steps: an ALLOW from device A; a DENY (role ``intern``) under event id X; a request
    from device B under the same id X -- the engine ALLOWs it, the audit trail holds a
    DENY under its decision id, so the agent emits DENY ``audit_conflict``.

    Happens: device B is in the user's ``known_devices`` (its last location and hour
    counted, a clean-request credit granted): ``TrustStep.store`` writes the fold's
    behaviour before the audit and only ``audit_unavailable`` puts it back
    (``pipeline.run``); ``audit_conflict`` and ``session_unavailable`` (Redis down) keep
    it.  The next request from B carries no ``new_device`` penalty.

    Should: a decision the pipeline turns into DENY is observed as a DENY (or the
    user's behaviour restored), like a DENY from the engine.
    """
    group = f"att{uuid.uuid4().hex[:8]}"
    start_worker("trust", DHARMA_WORKER_APP_ID=group)
    changelog = f"{group}-trust-trust-user-behaviour-changelog"
    tag = uuid.uuid4().hex[:8]
    user, device_a, device_b = f"teach_{tag}", f"teach_a_{tag}", f"teach_b_{tag}"
    reused = f"evt-teach-x-{tag}"
    send(seed_event(f"evt-teach-0-{tag}", recent(50), user_id=user,
                    device={"device_id": device_a}),
         seed_event(reused, recent(40), user_id=user, roles=["intern"],
                    device={"device_id": device_a}))
    poll(lambda: len(outputs.decisions(user_id=user)) >= 2, "the ALLOW and the DENY")
    send(seed_event(reused, recent(30), user_id=user, device={"device_id": device_b}))
    poll(lambda: [d for d, _ in outputs.decisions(event_id=reused)
                  if d["reasons"][:1] == ["audit_conflict"]], "DENY audit_conflict")
    # the fold stores the behaviour before the decision is emitted: what the changelog
    # holds now is final.  The reused id is one event already counted: not learnt again.
    behaviour = poll(lambda: (b := read_changelog(settings, changelog, user)) and
                     b["events"] >= 2 and b, "the behaviour after the requests")
    assert behaviour["events"] == 2
    assert device_b not in behaviour["known_devices"]


def test_a_record_keyed_by_another_user_is_refused(
        send: Any, outputs: Any, start_worker: Any, poll: Any) -> None:
    """Threat: a producer keys a request for user V with another key K, so it lands on
    K's partition, not V's.

    Steps: the seed's request for V, produced with key ``someone_else``.

    Happens: ALLOW, as if keyed by V.  The trust tables are keyed by user and
    co-partitioned with ``audit.logs`` on the assumption that "a user's records share a
    partition" (``docs/trust.md``): with more than one worker, the worker owning K's
    partition holds no history of V and decides with a blank one (no ``new_device``,
    ``impossible_travel``, ``unusual_hour`` or denial-burst signal, none of V's risk
    penalties), and writes V's behaviour to K's changelog partition, where recovery can
    later overwrite V's real history with it; ``last_seen`` (one partition's offset)
    then also miscounts V's replays.

    Should: a record whose key is not its ``user_id`` is a contract violation: dead
    letter, and DENY ``contract_violation`` (the ids are readable).
    """
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user = f"keyed_{tag}"
    send(seed_event(f"evt-keyed-{tag}", recent(10), user_id=user,
                    device={"device_id": f"keyed_dev_{tag}"}), key=f"someone_else_{tag}")
    assert decided(outputs, poll, f"evt-keyed-{tag}", "the request")["decision"] == "DENY"
