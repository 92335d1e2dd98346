"""Hostile input and security alerts through the real stack."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import Producer
from trust_helpers import audit_rows, decided, recent, seed_event

from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration


def test_malformed_and_hostile_events_are_denied_and_dead_lettered(
        settings: Any, producer: Any, outputs: Any, start_worker: Any, poll: Any) -> None:
    """Each bad record goes to the DLQ and, when an id can be read from it, is also decided
    DENY (with the validation errors) and audited: nobody waits for an answer."""
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, when = f"hostile_{tag}", recent(60)
    traversal = seed_event(f"evt-traversal-{tag}", when, user_id=user,
                           resource="database/production/../../etc;DROP")
    sql_user = seed_event(f"evt-sqluser-{tag}", when, user_id="admin' OR '1'='1")
    wildcard = seed_event(f"evt-glob-{tag}", when, user_id=user, resource="database/production/*")
    nul = seed_event(f"evt-nul-{tag}", when, user_id=user, action="read\x00;drop")
    far = seed_event(f"evt-far-{tag}", when, user_id=user)
    far["ts"] = 2**62  # a valid Avro long, no valid time
    good = seed_event(f"evt-good-{tag}", when + timedelta(seconds=5), user_id=user)
    bad = (traversal, sql_user, wildcard, nul, far)
    raw = Producer(settings.kafka.confluent_config())
    with Tailer(settings, ["audit.logs.dlq"], from_beginning=True) as dlq:
        raw.produce("audit.logs", key=user.encode(), value=os.urandom(64))
        raw.flush()
        for event in (*bad, good):
            producer.produce("audit.logs", user, event)
        producer.flush()
        letters: list[dict[str, Any]] = []

        def all_letters() -> bool:
            letters.extend(v for _, v in dlq.poll(0.5)
                           if tag.encode() in (v["original_value"] or b"")
                           or v["original_key"] == user.encode())
            return len(letters) >= 6

        poll(all_letters, "six dead letters")
    (decision, _), *_ = poll(lambda: outputs.decisions(event_id=good["event_id"]),
                             "the good request still decided")
    assert decision["decision"] == "ALLOW"
    kinds = sorted(v["error_kind"] for v in letters)
    assert kinds == ["contract_violation"] * 5 + ["undecodable"]
    reasons = " ".join(v["reason"] for v in letters if v["error_kind"] == "contract_violation")
    assert "resource" in reasons and "user_id" in reasons
    for event in bad:
        (denied, _), *_ = poll(lambda e=event: outputs.decisions(event_id=e["event_id"]),
                               f"{event['event_id']} decided")
        assert denied["decision"] == "DENY"
        assert denied["reasons"][:2] == ["contract_violation", "invalid access event"]
        assert len(denied["reasons"]) > 2  # the validation errors
        (row,) = poll(lambda e=event: audit_rows(settings, e["event_id"]), "audited")
        assert (row["decision"], row["decision_id"]) == ("DENY", denied["decision_id"])
    assert outputs.decisions(event_id=sql_user["event_id"])[0][0]["user_id"] == sql_user[
        "user_id"]
    assert not any("\x00" in d["action"] for d, _ in outputs.decisions(user_id=user))


def test_deny_burst_raises_exactly_one_alert(
        settings: Any, producer: Any, outputs: Any, start_worker: Any, poll: Any) -> None:
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, when = f"burst_{tag}", recent(300)
    denied = [seed_event(f"evt-deny-{tag}-{i}", when + timedelta(seconds=10 * i), user_id=user,
                         roles=["intern"]) for i in range(8)]
    for event in denied:
        producer.produce("audit.logs", user, event)
    producer.flush()
    poll(lambda: len(outputs.decisions(user_id=user, decision="DENY")) == 8, "8 DENYs")
    (alert,) = poll(lambda: outputs.alerts(source=user), "burst alert")
    assert (alert["kind"], alert["status"], alert["severity"]) == (
        "access_denied_burst", "firing", "warning")

    # Still in the same episode: a probe of a forbidden resource (write from outside)
    # raises its own alert, and the burst is not alerted again.
    probe = seed_event(f"evt-probe-{tag}", when + timedelta(seconds=90), user_id=user,
                       action="write", source_ip="203.0.113.9")
    producer.produce("audit.logs", user, probe)
    producer.flush()
    poll(lambda: outputs.alerts(source=user, kind="forbidden_probe"), "forbidden probe alert")
    (decision, _), *_ = outputs.decisions(event_id=probe["event_id"])
    assert (decision["decision"], decision["policy_id"]) == ("DENY", "pol_901")
    bursts = outputs.alerts(source=user, kind="access_denied_burst")
    assert len(bursts) == 1
    assert len({a["fingerprint"] for a in outputs.alerts(source=user)}) == 2


def test_a_mis_keyed_risk_signal_is_dead_lettered_and_still_revokes(
        settings: Any, producer: Any, outputs: Any, redis_client: Any, start_worker: Any,
        poll: Any) -> None:
    """A record whose key is not its user_id is a contract violation (it would be decided,
    and written, on another user's partition); a risk signal so keyed is dead-lettered but
    still revokes the sessions it names: it only lowers trust."""
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, device = f"miskeyed_{tag}", {"device_id": f"miskeyed_dev_{tag}"}
    allow = decided(producer, outputs, poll,
                    seed_event(f"evt-mk-{tag}", recent(30), user_id=user, device=device))
    assert allow["decision"] == "ALLOW"
    risk = seed_event(f"evt-mk-risk-{tag}", recent(5), user_id=user, device=device,
                      event_type="risk_signal", resource="", action="",
                      risk_reason="session_hijack")
    with Tailer(settings, ["audit.logs.dlq"], from_beginning=True) as dlq:
        producer.produce("audit.logs", f"someone_else_{tag}", risk)
        producer.flush()
        (letter, *_) = poll(lambda: [v for _, v in dlq.poll(0.5)
                                     if tag.encode() in (v["original_value"] or b"")],
                            "the risk signal dead-lettered")
    assert (letter["error_kind"], "key" in letter["reason"]) == ("contract_violation", True)
    revoked = poll(lambda: [d for d, _ in outputs.decisions(session_id=allow["session_id"])
                            if d["decision"] == "REVOKE"], "the session revoked")
    assert revoked[0]["event_id"] == risk["event_id"]
    assert not redis_client.exists(f"session:{allow['session_id']}")
