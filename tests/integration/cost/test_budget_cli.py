"""``dharma cost budget`` against the session's PostgreSQL (set, list, delete, bad
input, a database away), and the cost worker's :class:`BudgetStore`: the alert state
it keeps so a restart fires nothing twice, replays that change nothing, and a
PostgreSQL that goes away and comes back.

Team names carry a tag of the test's own (one PostgreSQL serves the session); the
estate's budget is global to it, so the test that sets it deletes it in a ``finally``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from dharma.agents.cost.budgets import (
    DAY_MS,
    Budget,
    alert_state,
    evaluate_budgets,
)
from dharma.cli import app
from dharma.sinks.budgets import BudgetStore, list_budgets

# the PostgreSQL a test stops and starts is the trust flow tests' (``trust_servers``)
sys.path.insert(0, str(Path(__file__).parents[1] / "trust"))
from trust_servers import own_postgres

pytestmark = pytest.mark.integration

runner = CliRunner()
DEC = 1_796_083_200_000  # 2026-12-01T00:00:00Z


def cli(*args: str, **env: str) -> Result:
    return runner.invoke(app, ["cost", "budget", *args], env=env or None)


@pytest.fixture
def dsn(settings: Any) -> str:
    return str(settings.postgres.dsn.get_secret_value())


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


def listed(tag: str) -> list[dict[str, Any]]:
    result = cli("list", "--json")
    assert result.exit_code == 0, result.output
    return [b for b in json.loads(result.stdout) if tag in b["team"] or b["team"] == "*"]


def test_set_list_and_delete_budgets(dsn: str, tag: str) -> None:
    team = f"payments-{tag}"
    first = cli("set", "--team", team, "--monthly", "12000", "--by", "alice")
    assert first.exit_code == 0, first.output
    assert f"budget of team {team}: 12000.00 USD a month (set by alice)" in first.stdout
    assert cli("set", "--team", team, "--monthly", "15000.5", "--by", "bob").exit_code == 0
    [row] = [b for b in listed(tag) if b["team"] == team]
    assert (row["monthly"], row["currency"], row["set_by"]) == (15000.5, "USD", "bob")
    assert row["set_at"] > 0
    table = cli("list")
    assert table.exit_code == 0 and team in table.stdout and "15000.50" in table.stdout

    gone = cli("delete", "--team", team)
    assert gone.exit_code == 0 and f"budget of team {team} deleted" in gone.stdout
    assert [b for b in listed(tag) if b["team"] == team] == []
    again = cli("delete", "--team", team)
    assert again.exit_code == 1 and f"team {team} has no budget" in again.stderr


def test_the_estate_budget(dsn: str) -> None:
    try:
        result = cli("set", "--total", "--monthly", "50000", "--by", "cfo")
        assert result.exit_code == 0, result.output
        assert "budget of the whole estate: 50000.00 USD" in result.stdout
        assert [(b.team, b.monthly) for b in list_budgets(dsn) if b.team == "*"] == [
            ("*", 50000.0)]
    finally:
        assert cli("delete", "--total").exit_code == 0
    assert [b for b in list_budgets(dsn) if b.team == "*"] == []


@pytest.mark.parametrize(("args", "message"), [
    (("--monthly", "0"), "must be a positive amount"),
    (("--monthly", "-5"), "must be a positive amount"),
    (("--monthly", "nan"), "must be a positive amount"),
    (("--monthly", "inf"), "must be a positive amount"),
])
def test_a_budget_that_is_not_a_positive_amount_is_refused(dsn: str, tag: str,
                                                           args: tuple[str, ...],
                                                           message: str) -> None:
    result = cli("set", "--team", f"web-{tag}", *args)
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert listed(tag) == [b for b in listed(tag) if b["team"] == "*"]


@pytest.mark.parametrize(("args", "message"), [
    (("--monthly", "10"), "either --team TEAM or --total"),
    (("--total", "--team", "web", "--monthly", "10"), "either --team TEAM or --total"),
    (("--team", "*", "--monthly", "10"), "use --total"),
    (("--team", "", "--monthly", "10"), "team"),
    (("--team", "web\u200b", "--monthly", "10"), "team"),
])
def test_a_budget_needs_one_scope(dsn: str, args: tuple[str, ...], message: str) -> None:
    result = cli("set", *args)
    assert result.exit_code == 1 and message in result.stderr, result.output


def test_a_database_away_is_one_line_and_exit_1(pick_port: Any) -> None:
    away = f"postgresql://postgres@127.0.0.1:{pick_port()}/dharma?connect_timeout=2"
    for args in (("set", "--team", "web", "--monthly", "10"), ("list",),
                 ("delete", "--team", "web")):
        result = cli(*args, DHARMA_POSTGRES_DSN=away)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("error:") and "Traceback" not in result.output


# -- the worker's store ------------------------------------------------------------------

def month_of_spend(team: str, days: int, per_day: float) -> list[dict[str, Any]]:
    """Budget alerts of ``team`` (budget 1000) after ``days`` of December spend."""
    spend = [(DEC + i * DAY_MS, per_day) for i in range(days)]
    return evaluate_budgets([Budget(team, 1000.0)], as_of_ms=DEC + days * DAY_MS,
                            spend_by_day={team: spend}, month_end={team: per_day * 31},
                            thresholds=(0.8, 1.0), state={})


async def restart_fires_nothing_twice(dsn: str, team: str) -> None:
    store = BudgetStore(dsn)
    await store.setup()
    try:
        records = month_of_spend(team, 10, 100.0)
        assert len(records) == 3
        await store.save_alerts(records)
        await store.save_alerts(records)  # a replay
    finally:
        await store.close()
    restarted = BudgetStore(dsn)
    await restarted.setup()
    try:
        stored = [r for r in await restarted.alerts() if r["labels"]["team"] == team]
        state = alert_state(stored)
        assert state == alert_state(records)
        again = evaluate_budgets([Budget(team, 1000.0)], as_of_ms=DEC + 10 * DAY_MS,
                                 spend_by_day={team: [(DEC + i * DAY_MS, 100.0)
                                                      for i in range(10)]},
                                 month_end={team: 3100.0}, thresholds=(0.8, 1.0), state=state)
        assert again == []
        raised = evaluate_budgets([Budget(team, 9000.0)], as_of_ms=DEC + 11 * DAY_MS,
                                  spend_by_day={team: []}, month_end={team: 3100.0},
                                  thresholds=(0.8, 1.0), state=state)
        assert {r["status"] for r in raised} == {"resolved"}
        await restarted.save_alerts(raised)
        await restarted.save_alerts(records)  # an older replay does not reopen them
        stored = [r for r in await restarted.alerts() if r["labels"]["team"] == team]
        assert sorted(r["status"] for r in stored) == ["resolved"] * 3
        assert await restarted.forget_resolved(DEC + 12 * DAY_MS) >= 3
    finally:
        await restarted.close()


def test_a_restart_fires_nothing_twice_and_a_replay_changes_nothing(dsn: str,
                                                                   tag: str) -> None:
    asyncio.run(restart_fires_nothing_twice(dsn, f"web-{tag}"))


def test_poisoned_alert_state_is_never_trusted(dsn: str, tag: str) -> None:
    team = f"web-{tag}"
    [good, *_] = month_of_spend(team, 10, 100.0)
    forged = {**good, "fingerprint": "0" * 32, "ts": good["ts"] + 1}

    async def store_and_read() -> list[dict[str, Any]]:
        store = BudgetStore(dsn)
        await store.setup()
        try:
            await store.save_alerts([forged])
            return [r for r in await store.alerts() if r["labels"]["team"] == team]
        finally:
            await store.close()

    stored = asyncio.run(store_and_read())
    assert stored == [forged]
    assert alert_state(stored) == {}  # its fingerprint is not its own


async def saved_within(store: BudgetStore, records: list[dict[str, Any]],
                       deadline_s: float) -> None:
    """Save ``records``, polling while PostgreSQL is still coming back."""
    deadline = asyncio.get_running_loop().time() + deadline_s
    while True:
        try:
            return await store.save_alerts(records)
        except psycopg.OperationalError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def through_an_outage(url: str, team: str, stop: Any, start: Any) -> None:
    store = BudgetStore(url, timeout_s=3.0)
    await store.setup()
    try:
        await store.save_alerts([(budget := month_of_spend(team, 10, 100.0))[0]])
        await asyncio.to_thread(stop)
        with pytest.raises(psycopg.OperationalError):
            await store.save_alerts(budget[1:])
        await asyncio.to_thread(start)
        await saved_within(store, budget[1:], 60.0)
        stored = [r for r in await store.alerts() if r["labels"]["team"] == team]
        assert alert_state(stored) == alert_state(budget)
    finally:
        await store.close()


def test_the_store_survives_postgresql_going_away(pick_port: Any, tag: str) -> None:
    with own_postgres(pick_port()) as pg:
        asyncio.run(through_an_outage(pg.url, f"web-{tag}", pg.stop, pg.start))
