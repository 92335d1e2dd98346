"""A store away under the trust topology: decided at once, fail closed, nothing lost.

Redis is stopped after a session opened (and saved, so the restarted server
has it); a posture update that revokes the session and a fresh request arrive
while it is away.  The critical alert says at once that sessions could not be
re-evaluated; the request is answered without an ALLOW unless its session is
recorded; the batch is held, not dead-lettered, and once Redis is back the
update is applied (the session is revoked) and every decision is audited.

PostgreSQL stopped: the request is answered DENY ``audit_unavailable`` at once,
and its row is in the audit trail once PostgreSQL is back (the batch held, not
dead-lettered).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from trust_helpers import Outputs, audit_rows, decided, recent, seed_event
from trust_servers import own_postgres, own_redis

from dharma.cli.dlq import read_letters
from dharma.streams.topics import AUDIT_LOGS

pytestmark = pytest.mark.integration


def test_redis_away_holds_the_batch_and_loses_nothing(
        settings: Any, tmp_path: Path, pick_port: Any, producer: Any, outputs: Outputs,
        start_worker: Any, poll: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    user, device = f"redisout_{tag}", f"redisout_dev_{tag}"
    with own_redis(tmp_path / "redis", pick_port()) as store:
        start_worker("trust", DHARMA_REDIS_URL=store.url)
        allow = decided(producer, outputs, poll, seed_event(
            f"evt-ro-{tag}", recent(60), user_id=user, device={"device_id": device}))
        assert allow["decision"] == "ALLOW"
        session = f"session:{allow['session_id']}"
        with redis.Redis.from_url(store.url) as client:
            assert client.exists(session)
            client.save()  # the restarted server loads it: the session outlives the outage

        store.stop()
        posture = seed_event(f"evt-ro-posture-{tag}", recent(30), user_id=user,
                             event_type="posture_update", resource="", action="",
                             device={"device_id": device, "compliance_score": 20.0})
        request = seed_event(f"evt-ro-request-{tag}", recent(20), user_id=user,
                             device={"device_id": f"{device}_2"})
        for event in (posture, request):
            producer.produce("audit.logs", user, event)
        producer.flush()
        (alert, *_) = poll(lambda: outputs.alerts(source=user, kind="revalidation_failed"),
                           "a critical alert while Redis is away", timeout=90)
        assert (alert["severity"], alert["status"]) == ("critical", "firing")

        store.start()
        (revoke, _), *_ = poll(lambda: outputs.decisions(event_id=posture["event_id"]),
                               "the update applied once Redis is back", timeout=90)
        assert (revoke["decision"], revoke["session_id"]) == ("REVOKE", allow["session_id"])
        answers = poll(lambda: outputs.decisions(event_id=request["event_id"]),
                       "the request decided")
        with redis.Redis.from_url(store.url) as client:
            assert not client.exists(session)
            for answer, _ in answers:  # no ALLOW whose session Redis does not hold
                assert answer["decision"] != "ALLOW" or client.exists(
                    f"session:{answer['session_id']}")
            assert answers[0][0]["decision"] != "ALLOW" or len(answers) == 1

        audited = {r["decision_id"]: r["decision"] for e in (posture, request)
                   for r in audit_rows(settings, e["event_id"])}
        for answer, _ in (*answers, (revoke, 0.0)):
            assert audited.get(answer["decision_id"]) == answer["decision"]
        assert [letter for _, letter in read_letters(settings, AUDIT_LOGS.dlq.name)
                if tag.encode() in (letter["original_value"] or b"")] == []


def test_postgres_away_answers_at_once_and_audits_the_denials_once_back(
        settings: Any, pick_port: Any, producer: Any, outputs: Outputs, start_worker: Any,
        poll: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    user, device = f"pgout_{tag}", {"device_id": f"pgout_dev_{tag}"}
    with own_postgres(pick_port()) as pg:
        start_worker("trust", DHARMA_POSTGRES_DSN=pg.url)
        before = decided(producer, outputs, poll, seed_event(
            f"evt-po-0-{tag}", recent(40), user_id=user, device=device))
        assert before["decision"] == "ALLOW"

        pg.stop()
        during = seed_event(f"evt-po-1-{tag}", recent(30), user_id=user, device=device)
        denied = decided(producer, outputs, poll, during)  # answered while PostgreSQL is away
        assert (denied["decision"], denied["reasons"][0]) == ("DENY", "audit_unavailable")

        pg.start()
        rows = poll(lambda: _rows(pg.url, during["event_id"]), "the denial audited once back",
                    timeout=90)
        assert rows == [(denied["decision_id"], "DENY")]
        assert [d["decision"] for d, _ in outputs.decisions(event_id=during["event_id"])] == [
            "DENY"]  # never an ALLOW for it
        assert [letter for _, letter in read_letters(settings, AUDIT_LOGS.dlq.name)
                if tag.encode() in (letter["original_value"] or b"")] == []


def _rows(dsn: str, event_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT decision_id, decision FROM access_audit WHERE event_id = %s",
            (event_id,)).fetchall()]
