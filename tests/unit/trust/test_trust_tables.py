"""Hostile records on the trust tables' changelogs: recovery never stalls, nothing fails open.

Each record goes through Faust's own recovery path (the changelog topic decodes it,
``apply_changelog_batch`` stores it), then a batch is folded through the tables.  A
behaviour record that cannot be read denies its user (``state_unavailable``, one
critical alert) and leaves everyone else alone; an alert state that cannot be read
starts afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from harness import RecordingEmitter, event_at
from hostile import UNDECODABLE_KEYS, exec_pickle, hostile_json_values, recover
from prometheus_client import CollectorRegistry

from dharma.agents.trust import AccessEvent, TrustEngine, UserBehaviour, parse_access_event
from dharma.agents.trust.alerts import AlertMemory
from dharma.agents.trust.logic import STATE_UNAVAILABLE, UNTRUSTED, Outcome, TrustStep
from dharma.agents.trust.state import ALERT_TABLE, BEHAVIOUR_TABLE, TrustTables
from dharma.streams.checkpoint import table_key
from dharma.streams.metrics import PipelineMetrics

Seed = Callable[..., dict[str, Any]]
NOW = 1_765_204_215_000 + 60_000  # a minute after the seed's request
GOOD = UserBehaviour(score=85.0, known_devices=("device_12345",)).to_dict()

#: Behaviour records that decode as JSON but must not be believed.
ABSURD = {
    "score_above_100": {**GOOD, "score": 1000},
    "score_as_text": {**GOOD, "score": "85"},
    "score_as_bool": {**GOOD, "score": True},
    "events_negative": {**GOOD, "events": -1},
    "hours_short": {**GOOD, "hours": [0] * 23},
    "too_many_devices": {**GOOD, "known_devices": [f"d{i}" for i in range(101)]},
    "device_id_hostile": {**GOOD, "known_devices": ["../../etc"]},
    "latitude_off_globe": {**GOOD, "last_lat": 91.0, "last_lon": 0.0,
                           "last_located_ms": NOW},
    "location_half_set": {**GOOD, "last_located_ms": NOW},
    "denial_time_absurd": {**GOOD, "denials": [2**62]},
    "offset_negative": {**GOOD, "last_seen": [0, -5]},
    "compromised_as_text": {**GOOD, "compromised_ms": "never"},
    "posture_absurd": {**GOOD, "postures": [{
        "device_id": "device_12345", "at_ms": NOW, "compliance_score": 1e9, "encrypted": True,
        "firewall": True, "antivirus": True, "patch_level": "latest"}]},
}


def poisoned_values() -> dict[str, bytes]:
    values = {kind: orjson.dumps(v) for kind, v in ABSURD.items()}
    return {**values, **hostile_json_values(GOOD), "exec_pickle": exec_pickle(Path("/nonexistent"))}


def state_of(metrics: PipelineMetrics, engine: TrustEngine) -> tuple[TrustStep, RecordingEmitter]:
    app = faust.App("t-trust-tables", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    emitter = RecordingEmitter()
    tables = TrustTables(app, emitter, metrics)
    return TrustStep(engine, tables), emitter


def tables_of(step: TrustStep) -> TrustTables:
    """The changelog-backed tables of a step built by :func:`state_of`."""
    assert isinstance(step.tables, TrustTables)
    return step.tables


def batch(seed: Seed, users: list[str], start: int = 0, **kw: Any) -> list[tuple[Any, AccessEvent]]:
    """One seed request per user (partition 0, consecutive offsets from ``start``)."""
    out = []
    for i, user in enumerate(users):
        event = parse_access_event(seed(event_id=f"evt-{start + i}-{user}", user_id=user, **kw))
        assert isinstance(event, AccessEvent)
        out.append((event_at(0, start + i),
                    event))
    return out


def decisions(out: Outcome) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {a.user_id: (d.decision.value, d.reasons) for _, a, d in out.decided}


def rejected(metrics: PipelineMetrics, table: str) -> float:
    return sum(metrics.registry.get_sample_value(
        "dharma_checkpoints_rejected_total", {"table": table, "reason": reason}) or 0.0
        for reason in ("format", "version", "invalid", "error"))


def test_recovery_applies_any_record_to_both_tables(engine: TrustEngine) -> None:
    state, _ = state_of(PipelineMetrics(CollectorRegistry()), engine)
    records = [(key, b"\x00junk") for key in UNDECODABLE_KEYS]
    records += [(table_key(f"u{i}"), value) for i, value in enumerate(poisoned_values().values())]
    for typed in (tables_of(state).behaviour_table, tables_of(state).alert_table):
        recover(typed.writer.table, records)
        assert dict(typed.writer.table.data) == dict(records)


@pytest.mark.parametrize("kind", sorted(poisoned_values()))
def test_an_unreadable_behaviour_denies_its_user_alone(engine: TrustEngine, seed: Seed,
                                                       kind: str) -> None:
    metrics = PipelineMetrics(CollectorRegistry())
    state, _ = state_of(metrics, engine)
    recover(tables_of(state).behaviour_table.writer.table, [
        *((key, b"\x00junk") for key in UNDECODABLE_KEYS),
        (table_key("poisoned"), poisoned_values()[kind]),
        (table_key("admin_user_001"), orjson.dumps(GOOD))])
    out = state.fold(batch(seed, ["poisoned", "admin_user_001", "new_user"]), NOW)

    decided = decisions(out)
    assert decided["poisoned"][0] == "DENY"
    assert decided["poisoned"][1][0] == STATE_UNAVAILABLE
    assert decided["admin_user_001"][0] == decided["new_user"][0] == "ALLOW"
    scores = {user: b.score for user, b, _, _ in out.changed if b is not None}
    assert scores == {"admin_user_001": 85.5, "new_user": 50.5}  # its record read; a new user
    (alert,) = out.alerts
    assert (alert["kind"], alert["severity"], alert["source"]) == (
        STATE_UNAVAILABLE, "critical", "poisoned")
    assert rejected(metrics, BEHAVIOUR_TABLE) == 1.0
    assert state.behaviour_of("poisoned") is UNTRUSTED


def test_the_poisoned_user_stays_denied_alerted_once_and_its_record_untouched(
        engine: TrustEngine, seed: Seed) -> None:
    metrics = PipelineMetrics(CollectorRegistry())
    state, emitter = state_of(metrics, engine)
    recover(tables_of(state).behaviour_table.writer.table,
            [(table_key("poisoned"), b'{"score": 1e400}')])
    alerts = []
    for n in range(3):
        out = state.fold(batch(seed, ["poisoned"], start=n), NOW)
        state.store(out)
        assert decisions(out)["poisoned"][1][0] == STATE_UNAVAILABLE
        alerts += out.alerts
    assert len(alerts) == 1  # deduplicated by the alert state
    assert rejected(metrics, BEHAVIOUR_TABLE) == 1.0  # the record, refused once
    topics = {topic for topic, *_ in emitter.sent}
    assert topics == {f"t-trust-tables-{ALERT_TABLE}-changelog"}  # behaviour: never overwritten


def test_updates_of_a_poisoned_user_still_reach_their_sessions(engine: TrustEngine,
                                                               seed: Seed) -> None:
    state, _ = state_of(PipelineMetrics(CollectorRegistry()), engine)
    recover(tables_of(state).behaviour_table.writer.table, [(table_key("poisoned"), b"[]")])
    risk = batch(seed, ["poisoned"], event_type="risk_signal", resource="", action="",
                 risk_reason="credential_leak")
    worse = batch(seed, ["poisoned"], start=1, device={"compliance_score": 10.0})
    out = state.fold([*risk, *worse], NOW)
    assert [(a.event_type, b) for _, a, b in out.updates] == [("risk_signal", UNTRUSTED)]
    assert [a.event_id for a in out.fresh] == [worse[0][1].event_id]  # its posture rechecks
    assert decisions(out)["poisoned"][1][0] == STATE_UNAVAILABLE


@pytest.mark.parametrize("repair", [orjson.dumps(GOOD), None])
def test_an_operator_repairs_a_user_with_a_good_record_or_a_tombstone(
        engine: TrustEngine, seed: Seed, repair: bytes | None) -> None:
    state, _ = state_of(PipelineMetrics(CollectorRegistry()), engine)
    table = tables_of(state).behaviour_table.writer.table
    recover(table, [(table_key("admin_user_001"), b"\x80\x04junk")])
    out = state.fold(batch(seed, ["admin_user_001"]), NOW)
    state.store(out)
    assert decisions(out)["admin_user_001"][1][0] == STATE_UNAVAILABLE

    recover(table, [(table_key("admin_user_001"), repair)])  # what a restart replays
    out = state.fold(batch(seed, ["admin_user_001"], start=1), NOW)
    assert decisions(out)["admin_user_001"][0] == "ALLOW"
    ((_, behaviour, alerts, _),) = out.changed
    assert behaviour is not None and behaviour.score == (85.5 if repair else 50.5)
    assert alerts == AlertMemory()  # the alert may fire again if the record breaks again


#: Alert states that must not be believed.
ALERT_VALUES = {**hostile_json_values({"burst_active": False, "last_fired": {}}),
                "unknown_kind": b'{"burst_active": false, "last_fired": {"exec": 1}}',
                "time_absurd": b'{"burst_active": false, "last_fired": {"forbidden_probe": -1}}'}


@pytest.mark.parametrize("kind", sorted(ALERT_VALUES))
def test_an_unreadable_alert_state_starts_afresh(engine: TrustEngine, seed: Seed,
                                                 kind: str) -> None:
    metrics = PipelineMetrics(CollectorRegistry())
    state, _ = state_of(metrics, engine)
    recover(tables_of(state).alert_table.writer.table,
            [(table_key("admin_user_001"), ALERT_VALUES[kind])])
    out = state.fold(batch(seed, ["admin_user_001"]), NOW)
    assert decisions(out)["admin_user_001"][0] == "ALLOW"
    assert state.alerts_of("admin_user_001") == AlertMemory()
    assert rejected(metrics, ALERT_TABLE) == 1.0


def test_an_allow_turned_deny_after_the_fold_teaches_nothing(engine: TrustEngine,
                                                             seed: Seed) -> None:
    """The pipeline may refuse an ALLOW after the fold (audit conflict, session revoked or
    unavailable): the user's behaviour is observed again with the DENY before anything is
    written, so the refused request's device is never learnt, not even for a moment; the
    user's other events (a risk signal) still count."""
    from dharma.agents.trust.engine import fail_closed

    state, emitter = state_of(PipelineMetrics(CollectorRegistry()), engine)
    known = batch(seed, ["u"], device={"device_id": "laptop_a"})
    out = state.fold(known, NOW)
    state.store(out)
    risk = batch(seed, ["u"], start=1, event_type="risk_signal", resource="", action="",
                 risk_reason="odd_login")
    new = batch(seed, ["u"], start=2, device={"device_id": "laptop_b"})
    out = state.fold([*risk, *new], NOW)
    (_, taught, _, _), = out.changed
    assert taught is not None and "laptop_b" in taught.known_devices  # the fold's view
    (_, _, allow), = out.decided
    sent = len(emitter.sent)
    state.relearn(out, [allow], NOW)  # nothing turned: nothing redone
    assert out.changed[0][1] is taught
    state.relearn(out, [fail_closed(allow, "audit_conflict", "another decision holds its id")],
                  NOW)
    state.store(out)
    after = state.behaviour_of("u")
    assert after.known_devices == ("laptop_a",)
    assert (after.events, after.last_seen, len(after.denials)) == (2, (0, 2), 1)
    assert after.score == 50.5 - 20 - 10  # the risk signal and the new device still count
    (record,) = [v for topic, _, v, _ in emitter.sent[sent:]
                 if topic.endswith(f"{BEHAVIOUR_TABLE}-changelog")]
    assert record is not None and orjson.loads(record) == after.to_dict()  # written once


def test_a_retried_duplicate_at_a_later_offset_is_decided_but_counted_once(
        engine: TrustEngine, seed: Seed) -> None:
    """A producer retry writes the same access request twice, at two offsets: the
    duplicate is decided again (its enforcement point gets an answer) but teaches
    nothing, in the same batch as its original or in a later one."""
    state, _ = state_of(PipelineMetrics(CollectorRegistry()), engine)
    (first,) = batch(seed, ["u"])
    again = (event_at(0, 1), first[1])
    out = state.fold([first, again], NOW)
    state.store(out)
    assert len(out.decided) == 2
    once = state.behaviour_of("u")
    assert once.events == 1
    out = state.fold([(event_at(0, 7), first[1])], NOW)
    state.store(out)
    assert len(out.decided) == 1 and state.behaviour_of("u") == once
