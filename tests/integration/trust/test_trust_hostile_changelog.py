"""Hostile records on the trust tables' changelogs: the worker recovers, serves, fails closed.

Before a worker of a fresh consumer group starts, its behaviour changelog is
written with one record per hostile kind, each under the key of a user who then
sends access requests (not JSON, a pickle that would create a marker file, a
list, a NaN, a wrong type, an unknown field, an oversized record, a score of
1000, half a location), and two records under keys Faust's own JSON key
decoding could not read (invalid UTF-8, a JSON object); a control user gets a
valid record (score 85) and the alert-state changelog a broken record for
another user.  Today's worker stalls in recovery (``Error in recovery``) and
decides nothing.

The worker must decide everyone: each poisoned user DENY ``state_unavailable``
(audited) with one critical alert however many requests, the control user from
its record, a new user and the user with the broken alert state normally; it
counts every refusal in ``dharma_checkpoints_rejected_total`` and runs nothing.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from hostile import (
    UNDECODABLE_KEYS,
    exec_pickle,
    hostile_json_values,
    rejected_count,
    worker_metrics,
    write_changelog,
)
from trust_helpers import audit_key, audit_rows, recent, seed_event

from dharma.agents.trust import UserBehaviour
from dharma.agents.trust.logic import STATE_UNAVAILABLE
from dharma.agents.trust.state import ALERT_TABLE, BEHAVIOUR_TABLE, audit_partition
from dharma.streams.checkpoint import table_key
from dharma.streams.topics import AUDIT_LOGS

pytestmark = pytest.mark.integration

GOOD = UserBehaviour(score=85.0, known_devices=("device_12345",)).to_dict()


def poisoned_values(marker: Path) -> dict[str, bytes]:
    return {**hostile_json_values(GOOD), "exec_pickle": exec_pickle(marker),
            "score_1000": orjson.dumps({**GOOD, "score": 1000}),
            "half_location": orjson.dumps({**GOOD, "last_located_ms": 1_765_204_215_000})}


def test_hostile_trust_changelogs_never_stall_the_worker_and_fail_closed(
        settings: Any, producer: Any, outputs: Any, start_worker: Any, poll: Any,
        tmp_path: Path) -> None:
    group, tag = f"hc{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    marker = tmp_path / "executed"
    values = poisoned_values(marker)
    poisoned = {kind: f"poisoned_{kind}_{tag}" for kind in values}
    control, fresh, alerted = f"control_{tag}", f"fresh_{tag}", f"alerted_{tag}"
    partition = lambda user: audit_partition(audit_key(settings)(user))  # noqa: E731
    behaviour = [(partition(u), table_key(u), values[k]) for k, u in poisoned.items()]
    behaviour += [(0, key, b"\x00junk") for key in UNDECODABLE_KEYS[:2]]
    behaviour.append((partition(control), table_key(control), orjson.dumps(GOOD)))
    write_changelog(settings, f"{group}-trust-{BEHAVIOUR_TABLE}-changelog",
                    AUDIT_LOGS.partitions, behaviour)
    write_changelog(settings, f"{group}-trust-{ALERT_TABLE}-changelog", AUDIT_LOGS.partitions,
                    [(partition(alerted), table_key(alerted), b'{"burst_active": "yes"}')])
    worker = start_worker("trust", DHARMA_WORKER_APP_ID=group)

    def request(user: str, n: int) -> str:
        event = seed_event(f"evt-hc-{tag}-{n}-{user}", recent(30), user_id=user)
        producer.produce("audit.logs", user, event)
        return str(event["event_id"])

    everyone = [*poisoned.values(), control, fresh, alerted]
    first = {user: request(user, 0) for user in everyone}
    producer.flush()
    decided = lambda ids: {d["user_id"]: d for d, _ in outputs.decisions()  # noqa: E731
                           if d["event_id"] in ids.values()}
    poll(lambda: len(decided(first)) == len(everyone), "everyone decided", timeout=120)
    second = {user: request(user, 1) for user in poisoned.values()}  # a later batch
    producer.flush()
    poll(lambda: len(decided(second)) == len(poisoned), "poisoned users decided again")

    for kind, user in poisoned.items():
        for ids in (first, second):
            decision = decided(ids)[user]
            assert (decision["decision"], decision["reasons"][0]) == ("DENY", STATE_UNAVAILABLE), \
                f"{kind}: {decision['decision']} {decision['reasons']}"
            (row,) = poll(lambda i=ids[user]: audit_rows(settings, i), f"{kind}: audited")
            assert (row["decision"], row["reasons"][0]) == ("DENY", STATE_UNAVAILABLE)
    for user in (control, fresh, alerted):
        assert decided(first)[user]["decision"] == "ALLOW", user
    alerts = [a for a in outputs.alerts(kind=STATE_UNAVAILABLE) if tag in a["source"]]
    assert sorted(a["source"] for a in alerts) == sorted(poisoned.values())  # once each
    assert {a["severity"] for a in alerts} == {"critical"}
    assert not marker.exists(), "a changelog record ran code in the worker"

    text = worker_metrics(worker, poll)
    assert rejected_count(text, BEHAVIOUR_TABLE) == len(poisoned)
    assert rejected_count(text, ALERT_TABLE, "invalid") == 1
    assert worker.proc.poll() is None, "the worker stopped"
