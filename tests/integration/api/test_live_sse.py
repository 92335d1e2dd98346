"""``GET /api/v1/live``: Server-Sent Events filtered server side; a stalled subscriber
loses the oldest events (counted) and slows nobody else; disconnects clean up."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from live_helpers import Records

from dharma.api.server import ApiServer

pytestmark = pytest.mark.integration

BUFFER = 10


@pytest.fixture(scope="module")
def api_server(settings: Any) -> Iterator[ApiServer]:
    """This module's server holds few events per subscriber."""
    small = settings.model_copy(update={
        "api": settings.api.model_copy(update={"live_buffer": BUFFER})})
    server = ApiServer(small, host="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()


class Subscriber:
    """Reads a live stream on a thread: the events (kind, id, data) and comments seen."""

    def __init__(self, url: str, headers: dict[str, str], **params: str) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.comments: list[str] = []
        self._client = httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=None))
        self._stream = self._client.stream("GET", "/api/v1/live", params=params,
                                           headers=headers)
        self.response = self._stream.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self.comments.append(line)
                elif line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                elif fields:
                    self.events.append((fields["event"], fields["id"],
                                        json.loads(fields["data"])))
                    fields = {}
        except httpx.HTTPError:  # closed by the test
            pass

    def close(self) -> None:
        """Hang up (a socket closed while another thread reads it stays open until that
        read returns: shut it down first, as a browser closing the tab does)."""
        sock = self.response.extensions["network_stream"].get_extra_info("socket")
        with contextlib.suppress(OSError):  # the server hung up first
            sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        self._stream.__exit__(None, None, None)
        self._client.close()


def _health(api: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    health: dict[str, Any] = api.get("/api/v1/pipeline/health", headers=headers).json()
    return health


def test_a_subscriber_gets_the_alerts_it_asked_for_and_no_other(
        api_server: ApiServer, api: httpx.Client, admin_headers: dict[str, str],
        settings: Any, poll: Any) -> None:
    records = Records(settings)
    wanted, other = f"web-{uuid.uuid4().hex[:6]}", f"db-{uuid.uuid4().hex[:6]}"
    sub = Subscriber(api_server.url, admin_headers, kinds="alert,incident", resource=wanted)
    try:
        assert sub.response.headers["content-type"].startswith("text/event-stream")
        poll(lambda: sub.comments, "the subscription is open")
        records.alert(other, severity="critical")
        records.flush()
        poll(lambda: api.get("/api/v1/alerts", params={"resource": other},
                             headers=admin_headers).json()["items"], "the feed read it")
        sent = records.alert(wanted, severity="critical")
        records.decision("u1", wanted)  # a decision about it: not asked for
        records.flush()
        kind, event_id, data = poll(lambda: sub.events and sub.events[0], "the alert arrives")
        assert (kind, data["alert_id"], data["source"]) == ("alert", sent["alert_id"], wanted)
        topic, partition, offset = event_id.split(":")
        assert topic == "alerts.notifications" and int(partition) >= 0 and int(offset) >= 0
        assert all(d["source"] == wanted and k == "alert" for k, _, d in sub.events)
    finally:
        sub.close()
    poll(lambda: _health(api, admin_headers)["live"]["subscribers"] == 0,
         "the subscription ends with its connection")


def test_decisions_and_predictions_are_their_own_kinds(
        api_server: ApiServer, admin_headers: dict[str, str], settings: Any,
        poll: Any) -> None:
    records = Records(settings)
    user = f"u-{uuid.uuid4().hex[:6]}"
    sub = Subscriber(api_server.url, admin_headers, kinds="decision", user=user)
    try:
        poll(lambda: sub.comments, "the subscription is open")
        records.prediction(user, "cpu", 1, 1.0)  # a prediction whose source is the user
        sent = records.decision(user, "database/prod")
        records.flush()
        kind, _, data = poll(lambda: sub.events and sub.events[0], "the decision arrives")
        assert (kind, data["decision_id"], data["decision"]) == (
            "decision", sent["decision_id"], "DENY")
        assert len(sub.events) == 1
    finally:
        sub.close()


def _stalled(url: str, headers: dict[str, str]) -> socket.socket:
    """A subscriber that never reads: a socket with a tiny receive buffer."""
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    auth = headers["Authorization"]
    sock.sendall(f"GET /api/v1/live?kinds=alert HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                 f"Authorization: {auth}\r\n\r\n".encode())
    return sock


def test_a_stalled_subscriber_loses_the_oldest_and_slows_nobody(
        api_server: ApiServer, api: httpx.Client, admin_headers: dict[str, str],
        settings: Any, poll: Any) -> None:
    records = Records(settings)
    noisy, quiet = f"noisy-{uuid.uuid4().hex[:6]}", f"quiet-{uuid.uuid4().hex[:6]}"
    dropped_before = _health(api, admin_headers)["live"]["dropped"]
    stalled = _stalled(api_server.url, admin_headers)
    reader = Subscriber(api_server.url, admin_headers, kinds="alert", resource=quiet)
    try:
        poll(lambda: _health(api, admin_headers)["live"]["subscribers"] == 2, "both subscribed")
        bulky = {f"k{n}": "x" * 1000 for n in range(8)}  # ~8 KB an event
        for n in range(800):
            records.alert(noisy, subject=f"m{n}", labels=bulky)
        records.flush()
        poll(lambda: _health(api, admin_headers)["live"]["dropped"] > dropped_before,
             "the stalled subscriber drops events")
        sent = records.alert(quiet)
        records.flush()
        poll(lambda: [d for _, _, d in reader.events if d["alert_id"] == sent["alert_id"]],
             "the other subscriber still receives")
        assert reader.events and all(d["source"] == quiet for _, _, d in reader.events)
        metrics = api.get("/api/v1/metrics", headers=admin_headers).text
        line = next(x for x in metrics.splitlines()
                    if x.startswith("dharma_api_live_dropped_total "))
        assert float(line.split()[1]) > 0
    finally:
        reader.close()
        stalled.close()
    poll(lambda: _health(api, admin_headers)["live"]["subscribers"] == 0,
         "both subscriptions end")


@pytest.mark.parametrize("params", [
    {"kinds": "alert,bogus"}, {"kinds": ""}, {"severity": "urgent"}, {"user": "u" * 300}])
def test_a_bad_subscription_is_a_422(api: httpx.Client, admin_headers: dict[str, str],
                                     params: dict[str, str]) -> None:
    assert api.get("/api/v1/live", params=params, headers=admin_headers).status_code == 422


def test_live_needs_a_token(api: httpx.Client) -> None:
    assert api.get("/api/v1/live").status_code == 401


def test_the_server_stops_with_subscribers_connected(
        settings: Any, admin_headers: dict[str, str], poll: Any) -> None:
    server = ApiServer(settings, host="127.0.0.1", port=0).start()
    sub = Subscriber(server.url, admin_headers, kinds="alert")
    try:
        poll(lambda: sub.comments, "the subscription is open")
        server.stop()
        poll(lambda: not sub._thread.is_alive(), "the stream ends with the server")
    finally:
        sub.close()


def test_a_stream_ends_when_its_token_is_revoked(
        api_server: ApiServer, issue: Any, settings: Any, poll: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An open stream is admitted again as time passes: revoking the token ends it (a
    subscription is not a way around ``dharma api token revoke``)."""
    import asyncio

    from dharma.api.gate import mark_revoked
    from dharma.api.routes import live
    from dharma.sinks.api_tokens import revoke_token

    monkeypatch.setattr(live, "READMIT_S", 0.5)
    token = issue("viewer", user="revoked-subscriber")
    sub = Subscriber(api_server.url, {"Authorization": f"Bearer {token}"}, kinds="alert")
    try:
        poll(lambda: len(sub.comments) >= 3, "the stream admitted again while the token stands")
        assert ": access ended" not in sub.comments
        token_id = token.split("_")[1]
        revoke_token(settings.postgres.dsn.get_secret_value(), token_id)
        asyncio.run(mark_revoked(settings.redis.url.get_secret_value(), token_id))
        poll(lambda: not sub._thread.is_alive(), "the stream ends once the token is revoked")
        assert sub.comments[-1] == ": access ended"
    finally:
        sub.close()
