"""Fail closed through the real stack: a PostgreSQL or Redis that goes away, forged time."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from trust_helpers import decided, recent, seed_event
from trust_servers import own_postgres, own_redis

from dharma.agents.trust import deterministic_id
from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration


def _rows(dsn: str, event_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT decision, reasons FROM access_audit WHERE event_id = %s",
                            (event_id,)).fetchall()


def _letters(dlq: Tailer, into: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    into.extend(v for _, v in dlq.poll(0.5) if tag.encode() in (v["original_value"] or b""))
    return into


def test_no_session_opens_while_postgres_is_down(settings: Any, pick_port: Any, producer: Any,
                                                 outputs: Any, redis_client: Any, start_worker: Any,
                                                 read_changelog: Any, poll: Any) -> None:
    """A real PostgreSQL of the worker's own is stopped and started again."""
    group = f"pg{uuid.uuid4().hex[:8]}"
    changelog = f"{group}-trust-trust-user-behaviour-changelog"
    with own_postgres(pick_port()) as pg, \
            Tailer(settings, ["audit.logs.dlq"], from_beginning=True) as dlq:
        # an outage outlasting its limit (test_trust_outage.py: one that does not)
        start_worker("trust", DHARMA_POSTGRES_DSN=pg.url, DHARMA_WORKER_APP_ID=group,
                     DHARMA_WORKER_SINK_OUTAGE_LIMIT_S="2")
        tag = uuid.uuid4().hex[:8]
        user, device = f"pgdown_{tag}", f"pgdown_dev_{tag}"

        def request(n: int) -> dict[str, Any]:
            event = seed_event(f"evt-pg-{tag}-{n}", recent(30 - n), user_id=user,
                               device={"device_id": device})
            producer.produce("audit.logs", user, event)
            producer.flush()
            return event

        before = request(0)
        (allow, _), *_ = poll(lambda: outputs.decisions(event_id=before["event_id"]), "ALLOW")
        assert allow["decision"] == "ALLOW"
        assert redis_client.exists(f"session:{allow['session_id']}")
        assert [r[0] for r in _rows(pg.url, before["event_id"])] == ["ALLOW"]

        pg.stop()
        during = request(1)
        (denied, _), *_ = poll(lambda: outputs.decisions(event_id=during["event_id"]),
                               "a decision while PostgreSQL is down", timeout=90)
        assert denied["decision"] == "DENY"
        assert denied["reasons"][0] == "audit_unavailable"
        assert denied["session_id"] is None
        assert [d["decision"] for d, _ in outputs.decisions(event_id=during["event_id"])] == [
            "DENY"]  # never an ALLOW
        session_id = deterministic_id("session", during["event_id"])
        assert not redis_client.exists(f"session:{session_id}")
        assert session_id not in redis_client.zrange(f"sessions:by-device:{device}", 0, -1)
        letters = poll(lambda: _letters(dlq, [], during["event_id"]), "batch dead-lettered")
        assert letters[0]["error_kind"] == "sink_error"
        # the dead-lettered request is not counted by the behaviour table
        assert read_changelog(settings, changelog, user)["events"] == 1

        pg.start()
        after = request(2)
        (allow, _), *_ = poll(lambda: outputs.decisions(event_id=after["event_id"]),
                              "decisions again once PostgreSQL is back", timeout=90)
        assert allow["decision"] == "ALLOW"
        assert redis_client.exists(f"session:{allow['session_id']}")
        assert [r[0] for r in _rows(pg.url, after["event_id"])] == ["ALLOW"]
        assert not redis_client.exists(f"session:{session_id}")  # never opened later either
        assert poll(lambda: read_changelog(settings, changelog, user)["events"] == 2,
                    "the third request counted")



def test_request_time_is_the_workers_to_judge(
        producer: Any, outputs: Any, redis_client: Any, start_worker: Any, poll: Any) -> None:
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, device = f"clock_{tag}", f"clock_dev_{tag}"
    now = recent(5)
    stale = seed_event(f"evt-stale-{tag}", now - timedelta(days=2), user_id=user,
                       device={"device_id": device})
    ahead = seed_event(f"evt-ahead-{tag}", now + timedelta(hours=2), user_id=user,
                       device={"device_id": device})
    fresh = seed_event(f"evt-fresh-{tag}", now, user_id=user, device={"device_id": device})
    for event in (stale, ahead, fresh):
        producer.produce("audit.logs", user, event)
    producer.flush()
    decided = poll(lambda: {d["event_id"]: d for d, _ in outputs.decisions(user_id=user)}
                   if len(outputs.decisions(user_id=user)) >= 3 else None, "three decisions")
    assert (decided[stale["event_id"]]["decision"], decided[stale["event_id"]]["reasons"][0]) == (
        "DENY", "stale_request")
    assert (decided[ahead["event_id"]]["decision"], decided[ahead["event_id"]]["reasons"][0]) == (
        "DENY", "clock_skew")
    allow = decided[fresh["event_id"]]
    assert allow["decision"] == "ALLOW"
    for event in (stale, ahead):  # neither opened a session
        assert not redis_client.exists(f"session:{deterministic_id('session', event['event_id'])}")

    # a posture report two days old still lowers trust: it revokes the live session
    posture = seed_event(f"evt-oldposture-{tag}", now - timedelta(days=2), user_id=user,
                         event_type="posture_update", resource="", action="",
                         device={"device_id": device, "encrypted": False,
                                 "compliance_score": 30.0})
    producer.produce("audit.logs", user, posture)
    producer.flush()
    (revoke, _), *_ = poll(lambda: outputs.decisions(event_id=posture["event_id"]), "revoked")
    assert (revoke["decision"], revoke["session_id"]) == ("REVOKE", allow["session_id"])
    assert not redis_client.exists(f"session:{allow['session_id']}")


def test_a_request_reporting_a_worse_posture_revokes_its_users_sessions(
        producer: Any, outputs: Any, redis_client: Any, start_worker: Any, poll: Any) -> None:
    start_worker("trust")
    tag = uuid.uuid4().hex[:8]
    user, other, device = f"worse_{tag}", f"worse_other_{tag}", f"worse_dev_{tag}"
    good = seed_event(f"evt-good-{tag}", recent(60), user_id=user, device={"device_id": device})
    allow = decided(producer, outputs, poll, good)
    assert allow["decision"] == "ALLOW"

    bad_device = {"device_id": device, "encrypted": False, "firewall": False,
                  "compliance_score": 35.0}
    # another user claiming the device with a bad posture does not end this user's session
    claim = seed_event(f"evt-claim-{tag}", recent(50), user_id=other, device=bad_device)
    producer.produce("audit.logs", other, claim)
    producer.flush()
    poll(lambda: outputs.decisions(event_id=claim["event_id"]), "the other user decided")
    assert redis_client.exists(f"session:{allow['session_id']}")

    worse = seed_event(f"evt-worse-{tag}", recent(40), user_id=user, resource="logs/app/web",
                       device=bad_device)
    producer.produce("audit.logs", user, worse)
    producer.flush()
    both = poll(lambda: outputs.decisions(event_id=worse["event_id"])
                if len(outputs.decisions(event_id=worse["event_id"])) >= 2 else None,
                "the request decided and the session re-evaluated")
    by_session = {d["session_id"]: d["decision"] for d, _ in both}
    assert by_session[allow["session_id"]] == "REVOKE"
    assert not redis_client.exists(f"session:{allow['session_id']}")


def test_revalidation_that_cannot_reach_redis_raises_a_critical_alert(
        settings: Any, tmp_path: Path, pick_port: Any, producer: Any, outputs: Any,
        start_worker: Any, poll: Any) -> None:
    with own_redis(tmp_path / "redis", pick_port()) as store, \
            Tailer(settings, ["audit.logs.dlq"], from_beginning=True) as dlq:
        # an outage outlasting its limit (test_trust_outage.py: one that does not)
        start_worker("trust", DHARMA_REDIS_URL=store.url, DHARMA_WORKER_SINK_OUTAGE_LIMIT_S="2")
        tag = uuid.uuid4().hex[:8]
        user, device = f"redisdown_{tag}", f"redisdown_dev_{tag}"
        good = seed_event(f"evt-rd-{tag}", recent(60), user_id=user,
                          device={"device_id": device})
        assert decided(producer, outputs, poll, good)["decision"] == "ALLOW"

        store.stop()
        posture = seed_event(f"evt-rdposture-{tag}", recent(30), user_id=user,
                             event_type="posture_update", resource="", action="",
                             device={"device_id": device, "compliance_score": 20.0})
        # from another device: the posture reported for the first would deny it anyway
        request = seed_event(f"evt-rdrequest-{tag}", recent(20), user_id=user,
                             device={"device_id": f"{device}_2"})
        producer.produce("audit.logs", user, posture)
        producer.produce("audit.logs", user, request)
        producer.flush()
        (alert, *_) = poll(lambda: outputs.alerts(source=user, kind="revalidation_failed"),
                           "a critical alert", timeout=90)
        assert (alert["severity"], alert["status"]) == ("critical", "firing")
        letters = poll(lambda: _letters(dlq, [], posture["event_id"]), "update dead-lettered")
        assert letters[0]["error_kind"] == "sink_error"
        (denied, _), *_ = poll(lambda: outputs.decisions(event_id=request["event_id"]),
                               "the request decided")
        assert (denied["decision"], denied["reasons"][0]) == ("DENY", "session_unavailable")


def test_business_hours_zone_and_internal_networks_come_from_the_environment(
        producer: Any, outputs: Any, start_worker: Any, poll: Any) -> None:
    from dharma.agents.trust import TrustConfig

    now = recent(5)
    utc = TrustConfig().is_business_hours(now)
    zones = ["Pacific/Auckland", "Asia/Tokyo", "Europe/Paris", "America/New_York",
             "America/Los_Angeles", "Pacific/Honolulu"]
    zone = next((z for z in zones if TrustConfig(timezone=z).is_business_hours(now) != utc),
                zones[0])
    config = TrustConfig(timezone=zone, internal_networks=("203.0.113.0/24",))
    start_worker("trust", DHARMA_TRUST_TIMEZONE=zone,
                 DHARMA_TRUST_INTERNAL_NETWORKS="203.0.113.0/24")
    tag = uuid.uuid4().hex[:8]
    user = f"settings_{tag}"
    partner = seed_event(f"evt-partner-{tag}", now, user_id=user, source_ip="203.0.113.7")
    office = seed_event(f"evt-office-{tag}", now, user_id=user, source_ip="10.0.1.50")
    for event in (partner, office):
        producer.produce("audit.logs", user, event)
    producer.flush()
    hours = 20 if config.is_business_hours(now) else 0
    (d, _), *_ = poll(lambda: outputs.decisions(event_id=partner["event_id"]), "decided")
    assert d["context_trust"] == 50 + hours + 15 - 10  # internal by the setting; production
    (d, _), *_ = poll(lambda: outputs.decisions(event_id=office["event_id"]), "decided")
    assert d["context_trust"] == 50 + hours - 10  # 10/8 is not internal here
