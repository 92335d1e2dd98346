"""Cost accrual (pure): proration, rate changes, retire-before-create, duplicates, late
corrections; any order of the same events gives the same totals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.cost.logic import (
    DAY_MS,
    HOUR_MS,
    Lifecycle,
    Placement,
    accrue,
    segments,
    window_costs,
    windows,
)

P = Placement("app-01", "app", "payments", "prod", "aws", "eu-west-1", "m5.large")
BIG = Placement("app-01", "app", "payments", "prod", "aws", "eu-west-1", "m5.xlarge")


def step(eid: str, ts: int, action: str, cost: float | None = 0.5,
         placement: Placement = P) -> Lifecycle:
    return Lifecycle(eid, "app-01", ts, action, placement, cost)  # type: ignore[arg-type]


def cost(events: list[Lifecycle], lo: int = 0, hi: int = 10 * DAY_MS) -> float:
    return accrue(segments(events), lo, hi).cost


def test_prorated_to_the_millisecond() -> None:
    events = [step("a", 1, "created", 3.6), step("b", 1 + 1_000, "retired")]
    assert cost(events) == pytest.approx(0.001)  # one second at $3.60 an hour


def test_a_live_asset_accrues_until_the_end_of_the_window() -> None:
    assert cost([step("a", HOUR_MS, "created", 2.0)], 0, 3 * HOUR_MS) == pytest.approx(4.0)


def test_an_update_with_a_price_changes_the_rate_from_its_time() -> None:
    events = [step("a", 0, "created", 1.0), step("b", 2 * HOUR_MS, "updated", 3.0, BIG),
              step("c", 3 * HOUR_MS, "retired")]
    assert cost(events) == pytest.approx(2.0 + 3.0)


def test_an_update_without_a_price_keeps_the_rate_of_the_same_size() -> None:
    events = [step("a", 0, "created", 1.0), step("b", HOUR_MS, "updated", None),
              step("c", 2 * HOUR_MS, "retired")]
    assert cost(events) == pytest.approx(2.0)


def test_a_new_size_without_a_price_is_unpriced_never_zero() -> None:
    events = [step("a", 0, "created", 1.0), step("b", HOUR_MS, "updated", None, BIG),
              step("c", 3 * HOUR_MS, "retired")]
    acc = accrue(segments(events), 0, DAY_MS)
    assert acc.cost == pytest.approx(1.0) and acc.unpriced_hours == pytest.approx(2.0)
    hours = window_costs(segments(events), "hour", 0, 3 * HOUR_MS, 3 * HOUR_MS)
    assert [h.cost for h in hours] == [pytest.approx(1.0), None, None]


def test_retire_before_create_in_arrival_order() -> None:
    events = [step("r", 5 * HOUR_MS, "retired"), step("c", HOUR_MS, "created", 1.0)]
    assert cost(events) == pytest.approx(4.0)


def test_duplicates_count_once() -> None:
    created, retired = step("a", 0, "created", 1.0), step("b", HOUR_MS, "retired")
    assert cost([created, created, retired, retired]) == pytest.approx(1.0)


def test_an_update_of_a_retired_asset_revives_nothing() -> None:
    events = [step("a", 0, "created", 1.0), step("b", HOUR_MS, "retired"),
              step("c", 2 * HOUR_MS, "updated", 5.0)]
    assert cost(events) == pytest.approx(1.0)


def test_a_late_retire_corrects_the_windows_after_it() -> None:
    events = [step("a", 0, "created", 1.0)]
    before = window_costs(segments(events), "day", 0, 3 * DAY_MS, 3 * DAY_MS)
    late = [*events, step("z", DAY_MS + 6 * HOUR_MS, "retired")]
    after = window_costs(segments(late), "day", 0, 3 * DAY_MS, 3 * DAY_MS)
    assert [w.cost for w in before] == [pytest.approx(24.0)] * 3
    assert [w.cost for w in after] == [pytest.approx(24.0), pytest.approx(6.0)]  # day 3: none


def test_windows_tumble_on_utc_boundaries() -> None:
    assert list(windows("day", DAY_MS - 1, DAY_MS + 1)) == [(0, DAY_MS), (DAY_MS, 2 * DAY_MS)]
    months = list(windows("month", 1_700_000_000_000, 1_706_000_000_000))  # Nov 2023 - Jan 2024
    assert [hi - lo for lo, hi in months] == [30 * DAY_MS, 31 * DAY_MS, 31 * DAY_MS]


actions = st.sampled_from(["created", "updated", "retired"])
events_strategy = st.lists(
    st.builds(lambda i, ts, a, c, big: step(f"e{i}", ts, a, c, BIG if big else P),
              st.integers(0, 10**6), st.integers(0, 5 * DAY_MS), actions,
              st.one_of(st.none(), st.floats(0, 50, allow_nan=False)), st.booleans()),
    max_size=12, unique_by=lambda e: e.event_id)


@given(events_strategy, st.randoms(use_true_random=False))
def test_any_order_of_the_same_events_gives_the_same_totals(
        events: list[Lifecycle], rnd: object) -> None:
    shuffled = list(events) + events[: len(events) // 2]  # with duplicates
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert segments(shuffled) == segments(events)
    for g in ("hour", "day", "month"):
        assert window_costs(segments(shuffled), g, 0, 6 * DAY_MS, 6 * DAY_MS) == \
            window_costs(segments(events), g, 0, 6 * DAY_MS, 6 * DAY_MS)


@given(events_strategy)
def test_windows_add_up_to_the_whole(events: list[Lifecycle]) -> None:
    segs = segments(events)
    whole = accrue(segs, 0, 6 * DAY_MS)
    hours = window_costs(segs, "hour", 0, 6 * DAY_MS, 6 * DAY_MS)
    assert math.isclose(sum(h.cost or 0.0 for h in hours), whole.cost, rel_tol=1e-9,
                        abs_tol=1e-9)
    assert math.isclose(sum(h.unpriced_hours for h in hours), whole.unpriced_hours,
                        abs_tol=1e-9)
    assert all(s.end is None or s.end > s.start for s in segs)


def test_an_id_reused_for_another_step_is_refused_and_a_replay_is_not_new() -> None:
    from dharma.agents.cost.accrual import admitted
    from dharma.agents.cost.state import MAX_EVENTS, Ledger

    created = step("a", 0, "created", 1.0)
    ledger = Ledger("app-01", (created,))
    forged = step("a", 0, "created", 0.0)  # the same id, a cheaper price
    new, refused = admitted(ledger, [("e1", created), ("e2", forged),
                                     ("e3", step("b", HOUR_MS, "retired"))])
    assert [s.event_id for _, s in new] == ["b"]
    assert [(e, r.reason.split(":")[0]) for e, r in refused] == [("e2", "conflict")]
    full = Ledger("app-01", tuple(step(f"u{i}", i, "updated") for i in range(MAX_EVENTS)))
    new, refused = admitted(full, [("e4", step("z", 10**7, "retired"))])
    assert not new and "holds" in refused[0][1].reason


@given(events_strategy)
def test_a_ledger_survives_its_changelog_record(events: list[Lifecycle]) -> None:
    import orjson

    from dharma.agents.cost.state import Ledger
    from dharma.streams.checkpoint import strict_json

    ledger = Ledger("app-01", tuple(sorted(events, key=lambda e: e.order)))
    assert strict_json(Ledger)(orjson.dumps(ledger.to_dict())) == ledger
