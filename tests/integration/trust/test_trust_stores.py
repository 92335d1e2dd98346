"""The session store and the audit sink against the real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from trust_helpers import recent, seed_event

from dharma.agents.trust import AccessEvent, Session, UserBehaviour, default_engine
from dharma.sinks.audit import AuditSink, audit_row
from dharma.sinks.sessions import SessionStore

pytestmark = pytest.mark.integration


def _session(tag: str, **overrides: Any) -> tuple[Session, AccessEvent]:
    engine = default_engine()
    record = seed_event(f"evt-store-{tag}", recent(), **{
        "user_id": f"store_{tag}", "device": {"device_id": f"store_dev_{tag}"}, **overrides})
    access = engine.decide(record, UserBehaviour(score=85))
    event = AccessEvent.model_validate(record)
    return Session.open(access, event), event


def test_a_session_opens_once_never_after_expiry_or_revocation(
        settings: Any, redis_client: Any) -> None:
    """Sessions live 1 s here; opened and revoked ids are kept for the guard (its default,
    930 s: session TTL + skew of the default configuration)."""
    url = settings.redis.url.get_secret_value()
    expiring, _ = _session(uuid.uuid4().hex[:8])
    revoked, _ = _session(uuid.uuid4().hex[:8])

    async def scenario() -> list[int]:
        store = SessionStore(url, Session.from_dict, ttl_s=1)
        opened = [await store.flush([expiring, revoked]), await store.flush([expiring])]
        await store.end([revoked], [])
        deadline = time.monotonic() + 10
        while redis_client.exists(f"session:{expiring.session_id}") and \
                time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.2)  # past any marker that lived only as long as a session
        opened.append(await store.flush([expiring, revoked]))  # replayed
        await store.close()
        return opened

    assert asyncio.run(scenario()) == [2, 0, 0]
    assert not redis_client.exists(f"session:{expiring.session_id}")
    assert not redis_client.exists(f"session:{revoked.session_id}")
    assert 900 < redis_client.ttl(f"session:{revoked.session_id}:revoked") <= 930


def test_open_reports_pairs_whose_requests_report_a_worse_posture(settings: Any) -> None:
    from dharma.agents.trust.session import posture_of

    url = settings.redis.url.get_secret_value()
    config = default_engine().config

    async def scenario() -> tuple[set[Any], set[Any], set[Any]]:
        store = SessionStore(url, Session.from_dict)
        tag = uuid.uuid4().hex[:8]
        session, event = _session(tag)
        pair = (event.user_id, event.device.device_id)
        good = posture_of(event.record["device"], config)
        worse = (good[0], 0, *good[2:])  # no longer encrypted
        first = (await store.open([(session, good)], {pair: good})).worse
        same = (await store.open([], {pair: good})).worse
        flagged = (await store.open([], {pair: worse, ("nobody", "nothing"): worse})).worse
        await store.close()
        return first, same, flagged

    first, same, flagged = asyncio.run(scenario())
    assert first == set() and same == set()
    assert len(flagged) == 1


def test_audit_confirms_only_allows_it_holds_as_such(settings: Any) -> None:
    """An ALLOW counts as committed only when the row under its id describes it: not when
    another request (a DENY, or another user's ALLOW) took the id first, nor for the second
    of two requests sharing an id in one batch."""
    dsn = settings.postgres.dsn.get_secret_value()
    engine = default_engine()

    async def scenario() -> list[set[int]]:
        sink = AuditSink(dsn)
        tag = uuid.uuid4().hex[:8]
        allow_record = seed_event(f"evt-audit-{tag}", recent(), user_id=f"audit_{tag}")
        allow = engine.decide(allow_record, UserBehaviour(score=85)).to_record()
        # another record under the same event id, decided first: it takes the decision id
        forged = engine.decide(dict(allow_record, roles=["intern"])).to_record()
        other_record = dict(allow_record, event_id=f"evt-audit2-{tag}")
        other = engine.decide(other_record, UserBehaviour(score=85)).to_record()
        # another user's ALLOW under other's id: the same decision id, another request
        intruder_record = dict(other_record, user_id=f"intruder_{tag}")
        intruder = engine.decide(intruder_record, UserBehaviour(score=85)).to_record()
        twin_record = seed_event(f"evt-audit3-{tag}", recent(), user_id=f"twin_{tag}")
        twin = engine.decide(twin_record, UserBehaviour(score=85)).to_record()
        twin_intruder_record = dict(twin_record, resource="database/production/other")
        twin_intruder = engine.decide(twin_intruder_record, UserBehaviour(score=85)).to_record()
        assert {allow["decision"], other["decision"], intruder["decision"], twin["decision"],
                twin_intruder["decision"]} == {"ALLOW"} and forged["decision"] == "DENY"
        assert intruder["decision_id"] == other["decision_id"]
        confirmed = [await sink.append([audit_row(forged, allow_record)]),
                     await sink.append([audit_row(allow, allow_record),
                                        audit_row(other, other_record)]),
                     await sink.append([audit_row(other, other_record)]),  # redelivered
                     await sink.append([audit_row(intruder, intruder_record)]),
                     await sink.append([audit_row(twin, twin_record),
                                        audit_row(twin_intruder, twin_intruder_record)])]
        await sink.close()
        return confirmed

    first, second, again, intruder, twins = asyncio.run(scenario())
    assert first == set()
    assert second == {1}  # the ALLOW whose id holds the forged DENY is not confirmed
    assert again == {0}
    assert intruder == set()  # another user's ALLOW under a stored ALLOW's id
    assert twins == {0}  # one row stored for the id: the first; the second is not it


def test_a_refused_open_says_why(settings: Any, redis_client: Any) -> None:
    """The store names the sessions it refuses to open: revoked, or expired (opened once,
    gone since); a session opened before and still live is a redelivery, not refused."""
    url = settings.redis.url.get_secret_value()
    live, _ = _session(uuid.uuid4().hex[:8])
    revoked, _ = _session(uuid.uuid4().hex[:8])
    expiring, _ = _session(uuid.uuid4().hex[:8])
    posture = (95.0, 1, 1, 1, 10)

    async def scenario() -> list[Any]:
        store = SessionStore(url, Session.from_dict)
        short = SessionStore(url, Session.from_dict, ttl_s=1)
        first = await store.open([(live, posture), (revoked, posture)], {})
        await short.open([(expiring, posture)], {})
        await store.end([revoked], [])
        deadline = time.monotonic() + 10
        while redis_client.exists(f"session:{expiring.session_id}") and \
                time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        again = await store.open([(live, posture), (revoked, posture), (expiring, posture)], {})
        await store.close()
        await short.close()
        return [first, again]

    first, again = asyncio.run(scenario())
    assert (first.opened, first.refused) == (2, {})
    assert again.opened == 0
    assert again.refused == {revoked.session_id: "revoked", expiring.session_id: "expired"}


def test_session_indexes_hold_live_sessions_only(settings: Any, redis_client: Any) -> None:
    """An active user's index does not grow with every session it ever had."""
    url = settings.redis.url.get_secret_value()
    tag = uuid.uuid4().hex[:8]
    first, _ = _session(f"{tag}a", user_id=f"idx_{tag}")
    second, _ = _session(f"{tag}b", user_id=f"idx_{tag}")

    async def scenario() -> list[Session]:
        store = SessionStore(url, Session.from_dict, ttl_s=1)
        await store.flush([first])
        deadline = time.monotonic() + 10
        while redis_client.exists(f"session:{first.session_id}") and \
                time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await store.flush([second])
        live = [s for s, _ in await store.touching(f"idx_{tag}", "no_device")]
        await store.close()
        return live

    assert asyncio.run(scenario()) == [second]
    assert redis_client.zrange(f"sessions:by-user:idx_{tag}", 0, -1) == [second.session_id]
