"""Zero trust through the real stack: seed example, revocation, replay."""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from trust_helpers import (
    audit_key,
    audit_rows,
    audited,
    business_hours_now,
    decided,
    recent,
    seed_event,
)

from dharma.agents.trust import UserBehaviour
from dharma.cli.seed import seed_behaviour

pytestmark = pytest.mark.integration


def test_seed_example_through_kafka(
        settings: Any, producer: Any, outputs: Any, redis_client: Any, start_worker: Any,
        read_changelog: Any, poll: Any) -> None:
    # The seed's historical score (85) is imported into the behaviour table's
    # changelog before the worker starts (the documented seeding mechanism).
    group = f"seed{uuid.uuid4().hex[:8]}"
    changelog = seed_behaviour(
        settings, group,
        {"admin_user_001": UserBehaviour(score=85, known_devices=("device_12345",))},
        key_of=audit_key(settings))
    # business hours are the deciding clock's: the worker's zone makes it about noon now
    start_worker("trust", DHARMA_WORKER_APP_ID=group, **business_hours_now())
    event_id = f"evt-seed-{uuid.uuid4().hex[:8]}"
    producer.produce("audit.logs", "admin_user_001", seed_event(event_id, recent(30)))
    producer.flush()

    (decision, _), *_ = poll(lambda: outputs.decisions(event_id=event_id), "decision emitted")
    assert decision["decision"] == "ALLOW"
    assert decision["trust_score"] == 93.05
    assert decision["trust_level"] == "FULL"
    assert decision["policy_id"] == "pol_001"
    assert decision["expires_in"] == 900
    assert (decision["device_trust"], decision["user_trust"], decision["context_trust"]) == (
        98.0, 100.0, 75.0)
    assert decision["user_id"] == "admin_user_001"

    (row,) = poll(lambda: audit_rows(settings, event_id), "audit row stored")
    assert (row["decision"], row["policy_id"], row["trust_score"]) == ("ALLOW", "pol_001", 93.05)
    assert row["inputs"]["source_ip"] == "10.0.1.0/24"  # masked

    session = json.loads(redis_client.get(f"session:{decision['session_id']}"))
    assert session["status"] == "active"
    assert 0 < redis_client.ttl(f"session:{decision['session_id']}") <= 900
    assert decision["session_id"] in redis_client.zrange("sessions:by-device:device_12345", 0, -1)

    # the behaviour started at the seeded 85 (a clean ALLOW earns 0.5)
    behaviour = poll(lambda: read_changelog(settings, changelog, "admin_user_001"),
                     "behaviour in the changelog")
    assert behaviour["score"] == 85.5


def test_posture_update_revokes_session_within_5s(
        settings: Any, producer: Any, outputs: Any, redis_client: Any, start_worker: Any,
        poll: Any) -> None:
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, device = f"rev_user_{tag}", f"rev_device_{tag}"
    when = recent(120)
    allow_id = f"evt-allow-{tag}"
    producer.produce("audit.logs", user, seed_event(allow_id, when, user_id=user,
                                                    device={"device_id": device}))
    producer.flush()
    (allow, _), *_ = poll(lambda: outputs.decisions(event_id=allow_id), "ALLOW emitted")
    assert allow["decision"] == "ALLOW"
    session_key = f"session:{allow['session_id']}"
    poll(lambda: redis_client.exists(session_key), "session stored")

    posture_id = f"evt-posture-{tag}"
    posture = seed_event(posture_id, when + timedelta(minutes=1), user_id=user,
                         event_type="posture_update", resource="", action="",
                         device={"device_id": device, "encrypted": False,
                                 "compliance_score": 40.0})
    started = time.monotonic()
    producer.produce("audit.logs", user, posture)
    producer.flush()
    (revoke, arrived), *_ = poll(lambda: outputs.decisions(event_id=posture_id),
                                 "re-evaluation emitted", timeout=30)
    assert revoke["decision"] in ("REVOKE", "CHALLENGE")
    assert revoke["decision"] == "REVOKE"  # non-compliant device: no step-up fixes it
    assert revoke["session_id"] == allow["session_id"]
    assert arrived - started <= 5.0, f"revocation took {arrived - started:.2f}s"
    assert not redis_client.exists(session_key)
    assert allow["session_id"] not in redis_client.zrange(f"sessions:by-device:{device}", 0, -1)
    rows = poll(lambda: audit_rows(settings, posture_id), "REVOKE audited")
    assert [r["decision"] for r in rows] == ["REVOKE"]
    assert [r["decision"] for r in audit_rows(settings, allow_id)] == ["ALLOW"]  # append-only

    # replaying the ALLOW does not reopen the revoked session
    producer.produce("audit.logs", user, seed_event(allow_id, when, user_id=user,
                                                    device={"device_id": device}))
    producer.flush()
    poll(lambda: len(outputs.decisions(event_id=allow_id)) == 2, "replayed ALLOW decided")
    assert not redis_client.exists(session_key)


def test_replayed_event_is_audited_once(
        settings: Any, producer: Any, outputs: Any, start_worker: Any, poll: Any) -> None:
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    event = seed_event(f"evt-replay-{tag}", recent(), user_id=f"replay_{tag}")
    for _ in range(2):
        producer.produce("audit.logs", event["user_id"], event)
    producer.flush()
    copies = poll(lambda: outputs.decisions(event_id=event["event_id"])
                  if len(outputs.decisions(event_id=event["event_id"])) == 2 else None,
                  "both copies decided")
    assert {d["decision_id"] for d, _ in copies} == {copies[0][0]["decision_id"]}
    assert len(audit_rows(settings, event["event_id"])) == 1


def test_restart_replays_records_without_counting_them_twice(
        settings: Any, producer: Any, outputs: Any, start_worker: Any, read_changelog: Any,
        poll: Any) -> None:
    """SIGKILL before any offset is committed: after the restart every record is
    decided again (same decision ids), and the behaviour table counts each once."""
    group = f"rp{uuid.uuid4().hex[:8]}"
    env = {"DHARMA_WORKER_APP_ID": group, "DHARMA_WORKER_COMMIT_INTERVAL_S": "120"}
    first = start_worker("trust", **env)
    tag = uuid.uuid4().hex[:8]
    users = [f"rp_{tag}_{i}" for i in range(3)]
    start = recent(120)
    events = [seed_event(f"evt-rp-{tag}-{i}-{user}", start + timedelta(seconds=i), user_id=user)
              for i in range(20) for user in users]
    for event in events:
        producer.produce("audit.logs", event["user_id"], event)
    producer.flush()
    ids = {event["event_id"] for event in events}
    seen = lambda: {d["event_id"] for d, _ in outputs.decisions()} & ids  # noqa: E731
    poll(lambda: seen() == ids, "every record decided once")
    first.stop(signal.SIGKILL)

    start_worker("trust", **env)
    replayed = lambda: [d for d, _ in outputs.decisions() if d["event_id"] in ids]  # noqa: E731
    poll(lambda: len(replayed()) == 2 * len(ids), "every record decided again after the restart")
    assert len({d["decision_id"] for d in replayed()}) == len(ids)
    changelog = f"{group}-trust-trust-user-behaviour-changelog"
    for user in users:
        behaviour = poll(lambda u=user: read_changelog(settings, changelog, u), "behaviour")
        assert behaviour["events"] == 20, f"{user}: {behaviour['events']} requests counted"
        assert sum(behaviour["hours"]) == 20


def test_replayed_allow_never_reopens_an_expired_session(
        settings: Any, producer: Any, outputs: Any, redis_client: Any, start_worker: Any,
        poll: Any) -> None:
    """Sessions live 10 s here; the ALLOW re-sent after expiry, while still fresh, opens
    nothing and is emitted as DENY ``session_expired`` (audited beside the ALLOW), not as
    an ALLOW whose session never opens."""
    start_worker("trust", DHARMA_TRUST_SESSION_TTL_S="10")
    tag = uuid.uuid4().hex[:8]
    event = seed_event(f"evt-expire-{tag}", recent(0), user_id=f"expire_{tag}",
                       device={"device_id": f"expire_dev_{tag}"})
    producer.produce("audit.logs", event["user_id"], event)
    producer.flush()
    (allow, _), *_ = poll(lambda: outputs.decisions(event_id=event["event_id"]), "ALLOW")
    key = f"session:{allow['session_id']}"
    assert allow["decision"] == "ALLOW" and allow["expires_in"] == 10
    poll(lambda: not redis_client.exists(key), "the session expired", timeout=30)

    producer.produce("audit.logs", event["user_id"], event)
    producer.flush()
    both = poll(lambda: outputs.decisions(event_id=event["event_id"])
                if len(outputs.decisions(event_id=event["event_id"])) == 2 else None,
                "the replay decided")
    replay = both[1][0]
    assert (replay["decision"], replay["reasons"][0]) == ("DENY", "session_expired")
    assert replay["decision_id"] != allow["decision_id"] and replay["session_id"] is None
    assert not redis_client.exists(key)
    rows = audited(settings, poll, event["event_id"], 2)  # the ALLOW and the DENY
    assert sorted(r["decision"] for r in rows) == ["ALLOW", "DENY"]


def test_a_replayed_allow_of_a_revoked_session_is_denied(
        settings: Any, producer: Any, outputs: Any, redis_client: Any, start_worker: Any,
        poll: Any) -> None:
    """Revoked by a request reporting a worse posture (nothing the engine remembers: the
    replay, claiming the old posture, is ALLOWed on its merits), the session stays closed
    and its replayed ALLOW goes out as DENY ``session_revoked``, audited."""
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, device = f"revoked_{tag}", f"revoked_dev_{tag}"
    original = seed_event(f"evt-revoked-{tag}", recent(40), user_id=user,
                          device={"device_id": device})
    allow = decided(producer, outputs, poll, original)
    assert allow["decision"] == "ALLOW"
    worse = seed_event(f"evt-revoked-worse-{tag}", recent(30), user_id=user,
                       resource="logs/app/web",
                       device={"device_id": device, "compliance_score": 80.0})
    producer.produce("audit.logs", user, worse)
    producer.flush()
    poll(lambda: [d for d, _ in outputs.decisions(session_id=allow["session_id"])
                  if d["decision"] == "REVOKE"], "the session revoked")

    producer.produce("audit.logs", user, original)
    producer.flush()
    (_, _), (replay, _) = poll(
        lambda: (found := outputs.decisions(event_id=original["event_id"]))[1:] and found,
        "the replay decided")
    assert (replay["decision"], replay["reasons"][0]) == ("DENY", "session_revoked")
    assert (replay["session_id"], replay["expires_in"]) == (None, 0)
    assert not redis_client.exists(f"session:{allow['session_id']}")
    rows = audited(settings, poll, original["event_id"], 2)
    assert sorted(r["decision"] for r in rows) == ["ALLOW", "DENY"]


def test_two_requests_under_one_event_id_one_allow_with_its_session_and_row(
        settings: Any, producer: Any, outputs: Any, redis_client: Any, start_worker: Any,
        poll: Any) -> None:
    """The event id is the requester's: two different requests sent under one id (here in
    one batch) get one ALLOW, whose session opens and whose audit row describes it, and
    one DENY ``audit_conflict`` with a row of its own."""
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, event_id = f"twin_{tag}", f"evt-twin-{tag}"
    read = seed_event(event_id, recent(20), user_id=user, device={"device_id": f"tw_{tag}"})
    write = dict(read, action="write", ts=read["ts"] + 1000)
    for event in (read, write):
        producer.produce("audit.logs", user, event)
    producer.flush()
    both = poll(lambda: (found := outputs.decisions(event_id=event_id))[1:] and found,
                "both decided")
    by_verdict = {d["decision"]: d for d, _ in both}
    assert sorted(by_verdict) == ["ALLOW", "DENY"]
    allow, deny = by_verdict["ALLOW"], by_verdict["DENY"]
    assert deny["reasons"][0] == "audit_conflict"
    assert redis_client.exists(f"session:{allow['session_id']}")
    rows = audited(settings, poll, event_id, 2)
    stored = {r["decision_id"]: r for r in rows}
    assert stored[allow["decision_id"]]["action"] == allow["action"]
    assert stored[deny["decision_id"]]["decision"] == "DENY"
