"""Access to the API against the real stack: tokens, the trust engine's decisions, the
audit trail, the decision feed, revocation, expiry and forgeries.

The decisions routes of the stores slice may not be mounted where this runs, so a
probe route is mounted the way every route is (``/api/v1`` behind ``authorize``) under
``/api/v1/decisions``: what is decided is the resource, whatever serves it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from fastapi import APIRouter, Depends, FastAPI, Request

from dharma.api.app import create_app
from dharma.api.auth import authorize, permits
from dharma.api.server import ApiServer
from dharma.streams.admin import registry_client
from dharma.streams.codec import AvroWire
from dharma.streams.topics import PREDICTIONS

pytestmark = pytest.mark.integration

probe = APIRouter()


@probe.get("/decisions/access-probe")
async def decisions_probe() -> dict[str, str]:
    return {"status": "ok"}


@probe.get("/alerts/access-probe/{item}")
async def item_probe(item: str) -> dict[str, str]:
    return {"item": item}


def with_routes(app: FastAPI, router: APIRouter) -> FastAPI:
    """``app`` with ``router`` mounted as every API route is (before the page's mount)."""
    app.include_router(router, prefix="/api/v1", dependencies=[Depends(authorize)])
    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the page at "/"
    return app


@pytest.fixture(scope="module")
def served(settings: Any) -> Iterator[httpx.Client]:
    server = ApiServer(settings, "127.0.0.1", 0, with_routes(create_app(settings), probe)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_rows(settings: Any, user: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        cur = conn.execute(
            "SELECT decision_id, resource, decision, reasons, policy_id, inputs "
            "FROM access_audit WHERE user_id = %s ORDER BY recorded_at", (user,))
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_a_viewer_on_decisions_is_denied_with_the_reason_and_audited(
        served: httpx.Client, issue: Callable[..., str], settings: Any) -> None:
    user = f"viewer-{secrets.token_hex(4)}"
    token = issue("viewer", user=user)
    response = served.get("/api/v1/decisions/access-probe", headers=bearer(token))
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert detail["decision"] == "DENY" and detail["policy_id"] == "pol_041"
    assert any(r.startswith("role: requires any of") for r in detail["reasons"])
    (row,) = audit_rows(settings, user)
    assert (row["resource"], row["decision"]) == ("api/v1/decisions/access-probe", "DENY")
    assert row["reasons"] == detail["reasons"]


@pytest.mark.parametrize(("value", "resource"), [
    ("db-1", "api/v1/alerts/access-probe/db-1"),
    ("' OR 1=1 --", "api/v1/alerts/access-probe/item"),
    ("50%25", "api/v1/alerts/access-probe/item"),
    ("x" * 200, "api/v1/alerts/access-probe/item"),
])
def test_a_path_value_names_the_resource_only_when_it_is_a_clean_segment(
        served: httpx.Client, issue: Callable[..., str], settings: Any, value: str,
        resource: str) -> None:
    user = f"viewer-{secrets.token_hex(4)}"
    response = served.get(f"/api/v1/alerts/access-probe/{value}",
                          headers=bearer(issue("viewer", user=user)))
    assert response.status_code == 200, response.text
    assert [(r["resource"], r["decision"]) for r in audit_rows(settings, user)] == [
        (resource, "ALLOW")]


def test_a_security_token_without_mfa_is_challenged(
        served: httpx.Client, issue: Callable[..., str], settings: Any) -> None:
    user = f"sec-{secrets.token_hex(4)}"
    response = served.get("/api/v1/decisions/access-probe",
                          headers=bearer(issue("security", user=user, mfa=False)))
    assert response.status_code == 401
    assert response.json()["detail"]["decision"] == "CHALLENGE"
    assert "insufficient_user_authentication" in response.headers["www-authenticate"]
    assert [r["decision"] for r in audit_rows(settings, user)] == ["CHALLENGE"]


def test_an_allow_is_audited_once_published_and_then_served_from_the_cache(
        served: httpx.Client, issue: Callable[..., str], settings: Any,
        poll: Callable[..., Any]) -> None:
    user = f"sec-{secrets.token_hex(4)}"
    headers = {**bearer(issue("security", user=user)), "X-Forwarded-For": "10.1.2.3"}
    for _ in range(3):
        assert served.get("/api/v1/decisions/access-probe", headers=headers).status_code == 200
    (row,) = audit_rows(settings, user)  # cached hits are covered by the ALLOW's row
    assert (row["decision"], row["policy_id"]) == ("ALLOW", "pol_041")
    assert row["inputs"]["source_ip"] == "127.0.0.0/24"  # the peer, not a forged header
    assert row["inputs"]["device"]["compliance_score"] == 0.0
    published = poll(lambda: _published(settings, row["decision_id"]), "decision published")
    assert published["decision"] == "ALLOW" and published["resource"] == row["resource"]


def _published(settings: Any, decision_id: str) -> dict[str, Any] | None:
    wire = AvroWire(registry_client(settings))
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": secrets.token_hex(8),
                         "enable.auto.commit": False})
    parts = consumer.list_topics(PREDICTIONS.name, timeout=5).topics[PREDICTIONS.name].partitions
    consumer.assign([TopicPartition(PREDICTIONS.name, p, OFFSET_BEGINNING) for p in parts])
    try:
        while batch := consumer.consume(500, 1.0):
            for msg in batch:
                if msg.error():
                    continue
                record = wire.decode(PREDICTIONS.value_subject, msg.value())
                if record.get("decision_id") == decision_id:
                    return dict(record)
    finally:
        consumer.close()
    return None


def test_a_revoked_token_is_refused_at_once_even_after_a_cached_allow(
        served: httpx.Client, issue: Callable[..., str], settings: Any) -> None:
    from typer.testing import CliRunner

    from dharma.cli import app as cli

    token = issue("viewer")
    assert served.get("/api/v1/access/me", headers=bearer(token)).status_code == 200
    result = CliRunner().invoke(cli, ["api", "token", "revoke", token.split("_")[1]])
    assert result.exit_code == 0, result.output
    response = served.get("/api/v1/access/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"detail": "a valid bearer token is required"}


def test_expired_forged_and_malformed_tokens_get_one_answer(
        served: httpx.Client, issue: Callable[..., str], poll: Callable[..., Any]) -> None:
    real = issue("admin")
    token_id = real.split("_")[1]
    expiring = issue("admin", ttl=timedelta(seconds=2))
    assert served.get("/api/v1/access/me", headers=bearer(expiring)).status_code == 200
    forged = [
        f"dhk_{token_id}_{secrets.token_urlsafe(32)}",  # a known id, another secret
        f"dhk_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}",  # an id nobody issued
        real + "x", real.upper(), "dhk_' OR 1=1 --_x", "%00" * 40, "x" * 10_000, "Bearer",
    ]
    answers = {(r.status_code, r.text) for r in (
        served.get("/api/v1/access/me", headers=bearer(t)) for t in forged)}
    answers.add(_answer(served.get("/api/v1/access/me")))
    answers.add(_answer(served.get("/api/v1/access/me", headers={"Authorization": real})))
    assert answers == {(401, '{"detail":"a valid bearer token is required"}')}
    expired = poll(lambda: served.get("/api/v1/access/me", headers=bearer(expiring))
                   .status_code == 401, "expired token refused", timeout=30)
    assert expired


def _answer(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.text


def test_over_the_rate_limit_is_429_with_retry_after(
        settings: Any, issue: Callable[..., str]) -> None:
    limited = settings.model_copy(update={"api": settings.api.model_copy(
        update={"rate_limit": 3, "rate_window_s": 30})})
    server = ApiServer(limited, host="127.0.0.1", port=0).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers=bearer(issue("viewer"))) as c:
            codes = [c.get("/api/v1/access/me").status_code for _ in range(4)]
            refused = c.get("/api/v1/access/me")
    finally:
        server.stop()
    assert codes == [200, 200, 200, 429]
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 30


def test_stores_away_fail_closed_with_503(
        settings: Any, issue: Callable[..., str], pick_port: Callable[[], int]) -> None:
    token = issue("admin")
    dead = f"127.0.0.1:{pick_port()}"
    no_redis = settings.model_copy(update={"redis": settings.redis.model_copy(
        update={"url": type(settings.redis.url)(f"redis://{dead}/0")})})
    assert _status(no_redis, token) == (
        503, "access check unavailable: Redis (rate limits, revocations) did not answer", "5")
    dsn = settings.postgres.dsn.get_secret_value().replace(
        settings.postgres.dsn.get_secret_value().split("@")[1].split("/")[0], dead)
    no_postgres = settings.model_copy(update={"postgres": settings.postgres.model_copy(
        update={"dsn": type(settings.postgres.dsn)(dsn)})})
    assert _status(no_postgres, token) == (
        503, "access check unavailable: the token store (PostgreSQL) did not answer", "5")


def _status(settings: Any, token: str) -> tuple[int, str, str]:
    server = ApiServer(settings, host="127.0.0.1", port=0).start()
    try:
        response = httpx.get(f"{server.url}/api/v1/access/me", headers=bearer(token), timeout=60)
    finally:
        server.stop()
    return response.status_code, response.json()["detail"], response.headers["retry-after"]


def test_an_audit_trail_away_never_lets_an_allow_through(
        settings: Any, issue: Callable[..., str], pick_port: Callable[[], int]) -> None:
    from dharma.api.access import AccessControl
    from dharma.sinks.audit import AuditSink

    app = create_app(settings)
    access = AccessControl(settings)
    access.audit = AuditSink(f"postgresql://postgres@127.0.0.1:{pick_port()}/dharma",
                             attempts=1, attempt_timeout_s=2.0)
    app.state.context.resources["access"] = access
    server = ApiServer(settings, "127.0.0.1", 0, app).start()
    started = time.monotonic()
    try:
        response = httpx.get(f"{server.url}/api/v1/access/me",
                             headers=bearer(issue("admin")), timeout=60)
    finally:
        server.stop()
    assert (response.status_code, response.json()) == (503, {
        "detail": "access check unavailable: the audit trail (PostgreSQL) did not answer"})
    assert time.monotonic() - started < 30


def test_permits_decides_each_resource_for_the_admitted_token(
        settings: Any, issue: Callable[..., str]) -> None:
    router = APIRouter()

    @router.get("/alerts/kinds")
    async def kinds(request: Request) -> dict[str, bool]:
        return {kind: await permits(request, f"api/v1/live/{kind}")
                for kind in ("alert", "decision", "prediction")}

    server = ApiServer(settings, "127.0.0.1", 0, with_routes(create_app(settings), router)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            viewer = client.get("/api/v1/alerts/kinds", headers=bearer(issue("viewer"))).json()
            security = client.get("/api/v1/alerts/kinds", headers=bearer(issue("security")))
    finally:
        server.stop()
    assert viewer == {"alert": True, "decision": False, "prediction": True}
    assert security.json() == {"alert": True, "decision": True, "prediction": True}


def test_a_revocation_survives_redis_forgetting_it(
        served: httpx.Client, issue: Callable[..., str], settings: Any) -> None:
    import redis

    from dharma.sinks.api_tokens import revoke_token

    token = issue("viewer")
    token_id = token.split("_")[1]
    assert served.get("/api/v1/access/me", headers=bearer(token)).status_code == 200
    revoke_token(settings.postgres.dsn.get_secret_value(), token_id)  # PostgreSQL only
    client = redis.Redis.from_url(settings.redis.url.get_secret_value())
    client.delete(f"api:token:{token_id}")  # as if Redis restarted empty
    client.close()
    assert served.get("/api/v1/access/me", headers=bearer(token)).status_code == 401


def test_a_poisoned_token_row_is_denied_never_allowed(
        served: httpx.Client, issue: Callable[..., str], settings: Any) -> None:
    token = issue("admin", user="mallory")
    with psycopg.connect(settings.postgres.dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute("UPDATE api_tokens SET user_id = %s, roles = %s WHERE token_id = %s",
                      ("x' OR 1=1 --", ["admin'--"], token.split("_")[1]))
    response = served.get("/api/v1/access/me", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["detail"]["decision"] == "DENY"


def test_an_exception_while_deciding_is_a_deny_never_an_allow(
        settings: Any, issue: Callable[..., str]) -> None:
    from dharma.api.access import AccessControl

    class Broken:
        def decide(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("policy index corrupted")

    app = create_app(settings)
    access = AccessControl(settings)
    access.engine = Broken()  # type: ignore[assignment]  # a stand-in that fails
    app.state.context.resources["access"] = access
    server = ApiServer(settings, "127.0.0.1", 0, app).start()
    try:
        response = httpx.get(f"{server.url}/api/v1/access/me",
                             headers=bearer(issue("admin")), timeout=60)
    finally:
        server.stop()
    assert response.status_code == 403
    assert response.json()["detail"] == {"decision": "DENY", "policy_id": None,
                                         "reasons": ["internal error: RuntimeError"]}
