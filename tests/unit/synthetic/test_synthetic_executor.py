"""The estate as an executor: an incident waits for the action that heals it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.synthetic import CATALOGUE, IncidentConfig, ScriptedIncident, SyntheticSource
from dharma.synthetic.executor import remediation_request

LEAK = ScriptedIncident("memory_leak", "web-server-01", start_tick=5, duration_ticks=10)
SERIES = ("web-server-01", "memory_utilization")


def source(executor: bool = True, scripted: tuple[ScriptedIncident, ...] = (LEAK,),
           **config: Any) -> SyntheticSource:
    return SyntheticSource(3, 1_700_000_000_000, incidents=IncidentConfig(
        incidents_per_day=0, chaos_per_day=0, scripted=scripted, executor=executor, **config))


def run(src: SyntheticSource, ticks: int) -> list[Any]:
    return [e for batch in src.ticks(ticks) for e in batch]


def values(emissions: list[Any], series: tuple[str, str] = SERIES) -> dict[int, float]:
    return {e.value["ts"]: e.value["value"] for e in emissions
            if e.topic == "metrics.raw" and (e.value["source"], e.value["metric"]) == series}


def reports(emissions: list[Any]) -> list[dict[str, Any]]:
    return [e.value for e in emissions if e.value.get("type") == "remediation"]


def test_no_scripted_incident_or_remediation_events_and_the_incident_waits() -> None:
    src = source()
    out = run(src, 40)
    assert not [e for e in out if e.value.get("type") in ("incident", "remediation")]
    leak = src.scheduler.affecting("web-server-01", 39)
    assert leak is not None, "past its drawn duration the incident persists"
    memory = values(out)
    plateau = [memory[src.ts_of(t)] for t in range(15, 40)]
    baseline = values(run(source(scripted=()), 40))
    assert all(v > baseline[src.ts_of(t)] + 20 for t, v in zip(range(15, 40), plateau,
                                                               strict=True))


def test_the_right_action_heals_after_its_downtime_and_metrics_return_to_baseline() -> None:
    src, plain = source(), source(scripted=())
    run(src, 20)
    run(plain, 20)
    src.execute(remediation_request("web-server-01", "rem-1", "restart_service",
                                    estimated_downtime_s=30, incident_id="inc-x"))
    out, base = run(src, 10), run(plain, 10)
    started, succeeded = reports(out)
    assert (started["ts"], succeeded["ts"]) == (src.ts_of(20), src.ts_of(23)), \
        "started at the next tick, succeeded 30 s (3 ticks of 10 s) later"
    assert succeeded["attributes"]["incident_id"] == "inc-x"
    assert "memory_leak" in succeeded["attributes"]["reason"] and "healed" in \
        succeeded["attributes"]["reason"]
    healed, normal = values(out), values(base)
    assert healed[src.ts_of(22)] > normal[src.ts_of(22)] + 20
    assert all(healed[src.ts_of(t)] == normal[src.ts_of(t)] for t in range(23, 30))
    (label,) = src.ground_truth()
    assert label.end_ms == succeeded["ts"]


@pytest.mark.parametrize("action, extra", [
    ("scale_out", {}), ("notify", {}), ("restart_service", {"rollback_of": "rem-0"})])
def test_another_action_succeeds_and_heals_nothing(action: str, extra: dict[str, Any]) -> None:
    src = source()
    run(src, 20)
    src.execute(remediation_request("web-server-01", "rem-2", action, **extra))
    out = run(src, 10)
    assert [r["attributes"]["status"] for r in reports(out)] == ["started", "succeeded"]
    assert "healed" not in reports(out)[-1]["attributes"]["reason"]
    assert src.scheduler.affecting("web-server-01", src.tick) is not None


def test_dry_runs_repeats_and_other_statuses_are_ignored() -> None:
    src = source()
    run(src, 20)
    request = remediation_request("web-server-01", "rem-3", "restart_service")
    src.execute(remediation_request("web-server-01", "rem-4", "restart_service", dry_run=True))
    src.execute({**request, "attributes": {**request["attributes"], "status": "started"}})
    src.execute(request)
    src.execute(request)
    out = run(src, 5)
    assert [(r["attributes"]["remediation_id"], r["attributes"]["status"])
            for r in reports(out)] == [("rem-3", "started"), ("rem-3", "succeeded")]
    src.execute(request)  # redelivered later: executed once
    assert reports(run(src, 5)) == []


def test_an_unknown_resource_fails_and_the_cap_ends_an_unremediated_incident() -> None:
    src = source(persist_factor=3)
    src.execute(remediation_request("mainframe-01", "rem-5", "restart_service"))
    out = run(src, 40)
    (failed,) = reports(out)
    assert failed["attributes"]["status"] == "failed"
    (label,) = src.ground_truth()
    assert label.end_ms == src.ts_of(5 + 3 * 10), "3 times its 10 ticks after its onset"
    memory, baseline = values(out), values(run(source(scripted=()), 40))
    assert memory[src.ts_of(34)] > baseline[src.ts_of(34)] + 20
    assert memory[src.ts_of(35)] == baseline[src.ts_of(35)]


def test_chaos_experiments_run_their_course() -> None:
    chaos = ScriptedIncident("cpu_spike", "app-server-01", 5, 10, chaos=True)
    src = source(scripted=(chaos,))
    out = run(src, 20)
    assert [e.value["attributes"]["status"] for e in out
            if e.value.get("type") == "chaos_experiment"] == ["started", "ended"]
    assert src.scheduler.affecting("app-server-01", 15) is None


@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from(sorted(
    {c.remediation for c in CATALOGUE.values()} | {"notify"}))), max_size=6))
def test_the_same_requests_at_the_same_ticks_give_the_same_stream(
        plan: list[tuple[int, str]]) -> None:
    def replay() -> list[Any]:
        src, out = source(), []
        for tick in range(32):
            for i, (at, action) in enumerate(plan):
                if at == tick:
                    src.execute(remediation_request("web-server-01", f"rem-{i}", action))
            out += run(src, 1)
        return out

    assert replay() == replay()


def test_without_executor_mode_nothing_changes() -> None:
    scripted = source(executor=False)
    out = run(scripted, 20)
    assert [e.value["attributes"]["status"] for e in out
            if e.value.get("type") == "incident"] == ["open", "resolved"]
    assert scripted.scheduler.affecting("web-server-01", 15) is None


@pytest.mark.parametrize("spec, problem", [
    ("memory_leak:web-server-01", "expected CATEGORY:RESOURCE@SECONDS"),
    ("meltdown:web-server-01@5s", "expected CATEGORY"),
    ("memory_leak:web-server-01@soon", "not a number of seconds")])
def test_an_injection_says_what_is_wrong(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ScriptedIncident.parse(spec, ticks_per_second=2)


def test_an_injection_on_an_unknown_resource_is_refused() -> None:
    with pytest.raises(ValueError, match="no resource 'mainframe-01'"):
        source(scripted=(ScriptedIncident.parse("memory_leak:mainframe-01@1s", 2),))
