"""The webhook executor through Kafka: requests produced to ``infrastructure.events``, a
real local HTTP server as the webhook, the reports read back from the topic.

Each test uses remediation ids of its own; reports are told apart by them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from confluent_kafka import Producer
from executor_support import TOPIC, Events

from dharma.streams.admin import registry_client
from dharma.streams.producer import AvroProducer
from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"


class Hook:
    """A local webhook: records every POST; answers 200, or what ``answers`` says for a
    remediation id (a status, or ``"slow"``: after ``slow_s``)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.answers: dict[str, int | str] = {}
        self.slow_s = 30.0
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.lock:
                    hook.posts.append({"path": self.path, "headers": dict(self.headers),
                                       "body": body})
                answer = hook.answers.get(body.get("remediation_id", ""), 200)
                if answer == "slow":
                    time.sleep(hook.slow_s)
                    answer = 200
                assert isinstance(answer, int)
                self.send_response(answer)
                self.end_headers()
                self.wfile.write(b'{"job": 42}' if answer < 300 else b"job template broken")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v2/job_templates/7/launch/"

    def of(self, remediation_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for p in self.posts if p["body"].get("remediation_id") == remediation_id]


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()


@pytest.fixture
def producer(settings: Any) -> AvroProducer:
    return AvroProducer(Producer(settings.kafka.confluent_config()), registry_client(settings))


@pytest.fixture
def reports(settings: Any) -> Iterator[Events]:
    value = Events(settings)
    yield value
    value.close()


def request(target: str, remediation_id: str, action: str = "restart_service",
            ts: int | None = None, **attrs: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts or int(time.time() * 1000),
            "type": "remediation", "resource_id": target, "attributes": {
                "remediation_id": remediation_id, "action": action, "status": "requested",
                "reason": f"memory_leak on {target}", "incident_id": f"inc-{remediation_id}",
                "playbook": "memory-leak-restart@1", "risk": "LOW",
                "estimated_downtime_s": 30, "attempt": 1, "dry_run": False,
                "rollback_of": None, "parameters": {"metric": "memory_utilization"},
                **attrs}}


def produce(producer: AvroProducer, *events: dict[str, Any]) -> None:
    for event in events:
        producer.produce(TOPIC, event["resource_id"], event)
    producer.flush()


def run(start_worker: Callable[..., Any], hook: Hook, **env: str) -> Any:
    return start_worker("executor", DHARMA_EXECUTOR_URL=hook.url, DHARMA_EXECUTOR_TOKEN=TOKEN,
                        DHARMA_EXECUTOR_PAYLOAD_STYLE="generic", **env)


def settled(poll: Any, reports: Events, remediation_id: str, *statuses: str) -> None:
    poll(lambda: reports.statuses(remediation_id)[-len(statuses):] == list(statuses),
         f"{remediation_id} reported {statuses}",
         describe=lambda: f"reports {reports.statuses(remediation_id)}")


def test_a_request_is_posted_once_with_its_body_and_headers_and_reported(
        start_worker: Callable[..., Any], hook: Hook, producer: AvroProducer,
        reports: Events, poll: Any) -> None:
    rid, target = f"rem-{uuid.uuid4().hex[:8]}", f"web-{uuid.uuid4().hex[:6]}"
    run(start_worker, hook)
    first = request(target, rid)
    produce(producer, first)
    settled(poll, reports, rid, "started", "succeeded")
    (post,) = hook.of(rid)
    assert post["path"] == "/api/v2/job_templates/7/launch/"
    assert post["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert post["headers"]["Idempotency-Key"] == rid
    body = post["body"]
    assert {k: body[k] for k in ("action", "target", "remediation_id", "incident_id")} == {
        "action": "restart_service", "target": target, "remediation_id": rid,
        "incident_id": f"inc-{rid}"}
    assert body["parameters"] == {"metric": "memory_utilization"}
    assert body["extra_vars"]["target"] == target
    started, succeeded = reports.reports(rid)
    assert started["resource_id"] == succeeded["resource_id"] == target
    assert succeeded["attributes"]["reason"].startswith("webhook answered 200")
    for field in ("action", "incident_id", "playbook", "attempt"):
        assert succeeded["attributes"][field] == first["attributes"][field]

    # the same request again, and again under another event id; then a marker request on
    # the same resource (same partition, so read after them)
    marker = f"rem-{uuid.uuid4().hex[:8]}"
    produce(producer, first, {**first, "event_id": uuid.uuid4().hex},
            request(target, f"dry-{marker}", dry_run=True), request(target, marker))
    settled(poll, reports, marker, "started", "succeeded")
    assert len(hook.of(rid)) == 1, "a request seen again was posted again"
    assert hook.of(f"dry-{marker}") == [] and reports.reports(f"dry-{marker}") == []
    again = reports.reports(rid)
    assert {r["event_id"] for r in again} == {started["event_id"], succeeded["event_id"]}
    assert all(r in (started, succeeded) for r in again), "a replay reported otherwise"


def test_an_error_answer_fails_and_a_transient_one_is_tried_again(
        start_worker: Callable[..., Any], hook: Hook, producer: AvroProducer,
        reports: Events, poll: Any) -> None:
    broken, busy = f"rem-{uuid.uuid4().hex[:8]}", f"rem-{uuid.uuid4().hex[:8]}"
    hook.answers.update({broken: 500, busy: 503})
    run(start_worker, hook)
    produce(producer, request("db-01", broken), request("db-02", busy))
    settled(poll, reports, broken, "started", "failed")
    settled(poll, reports, busy, "started", "failed")
    reason = reports.reports(broken)[-1]["attributes"]["reason"]
    assert "500" in reason and "job template broken" in reason
    assert len(hook.of(broken)) == 1, "a 500 is the job's answer: not tried again"
    assert len(hook.of(busy)) == 3, "a 503 is transient: tried DHARMA_EXECUTOR_ATTEMPTS times"
    assert "after 3 attempts" in reports.reports(busy)[-1]["attributes"]["reason"]


def test_expired_unknown_and_unreadable_requests_are_not_executed(
        start_worker: Callable[..., Any], hook: Hook, producer: AvroProducer,
        reports: Events, poll: Any, settings: Any) -> None:
    old, odd = f"rem-{uuid.uuid4().hex[:8]}", f"rem-{uuid.uuid4().hex[:8]}"
    run(start_worker, hook, DHARMA_EXECUTOR_MAX_AGE_S="600")
    produce(producer, request("app-01", old, ts=int(time.time() * 1000) - 3_600_000),
            request("app-01", odd, action="rm -rf /"))
    # a remediation record whose attributes are an asset's: valid Avro (other readers of the
    # session's topic decode it), but no request the executor can read
    odd_shape = {**request("app-01", f"odd-{old}"), "attributes": {
        "action": "created", "asset_type": "app", "name": "app-01", "provider": "aws",
        "region": "eu-west-1", "team": "payments", "env": "prod"}}
    produce(producer, odd_shape)
    settled(poll, reports, old, "failed")
    settled(poll, reports, odd, "failed")
    reason = reports.reports(old)[-1]["attributes"]["reason"]
    assert reason.startswith("expired: requested 36") and reason.endswith("(max age 600 s)")
    assert reports.reports(odd)[-1]["attributes"]["reason"] == "refused: unknown action 'rm -rf /'"
    assert hook.of(old) == hook.of(odd) == []
    with Tailer(settings, [f"{TOPIC}.dlq"], from_beginning=True) as dlq:
        poll(lambda: any(v["error_kind"] == "contract_violation"
                         and odd_shape["event_id"].encode() in v["original_value"]
                         for _, v in dlq.poll(0.5)), "the unreadable request dead-lettered")


def test_after_a_sigkill_nothing_is_posted_twice(
        start_worker: Callable[..., Any], hook: Hook, producer: AvroProducer,
        reports: Events, poll: Any) -> None:
    done, slow = f"rem-{uuid.uuid4().hex[:8]}", f"rem-{uuid.uuid4().hex[:8]}"
    hook.answers[slow] = "slow"
    target = f"web-{uuid.uuid4().hex[:6]}"
    # the restart replays it all; the slow call is not timed out (and tried again) first
    never_commit = {"DHARMA_WORKER_COMMIT_INTERVAL_S": "600", "DHARMA_EXECUTOR_TIMEOUT_S": "300"}
    worker = run(start_worker, hook, **never_commit)
    produce(producer, request(target, done), request(target, slow))
    settled(poll, reports, done, "started", "succeeded")
    poll(lambda: hook.of(slow), "the slow call under way")
    worker.stop(9)  # during the slow call, nothing committed
    run(start_worker, hook, **never_commit)
    settled(poll, reports, slow, "started", "failed")
    assert reports.reports(slow)[-1]["attributes"]["reason"].startswith("outcome unknown")
    marker = f"rem-{uuid.uuid4().hex[:8]}"
    produce(producer, request(target, marker))
    settled(poll, reports, marker, "started", "succeeded")
    assert len(hook.of(done)) == 1 and len(hook.of(slow)) == 1, "posted again after a restart"
    assert len({r["event_id"] for r in reports.reports(done)}) == 2, "replayed reports differ"


def test_without_its_store_nothing_is_called_and_the_request_is_dead_lettered(
        start_worker: Callable[..., Any], hook: Hook, producer: AvroProducer,
        settings: Any, poll: Any, pick_port: Callable[[], int]) -> None:
    rid = f"rem-{uuid.uuid4().hex[:8]}"
    run(start_worker, hook, DHARMA_WORKER_SINK_OUTAGE_LIMIT_S="1",
        DHARMA_POSTGRES_DSN=f"postgresql://postgres@127.0.0.1:{pick_port()}/dharma")
    produce(producer, request("db-09", rid))
    with Tailer(settings, [f"{TOPIC}.dlq"], from_beginning=True) as dlq:
        def dead_lettered() -> bool:
            return any(v["error_kind"] == "sink_error" and rid.encode() in v["original_value"]
                       and "not claimed, not executed" in v["reason"]
                       for _, v in dlq.poll(0.5))

        poll(dead_lettered, "the unclaimed request dead-lettered as sink_error", timeout=120)
    assert hook.of(rid) == [], "a request was called without its claim"
