from __future__ import annotations

from synthetic_support import START_MS, make_source

from dharma.synthetic import SyntheticSource


def test_same_seed_same_stream() -> None:
    a = list(make_source(5, random_incidents=True).events(limit=20_000))
    b = list(make_source(5, random_incidents=True).events(limit=20_000))
    assert a == b


def test_different_seed_different_stream() -> None:
    a = [e.value for e in make_source(5).events(limit=2_000)]
    b = [e.value for e in make_source(6).events(limit=2_000)]
    assert a != b


def test_ground_truth_deterministic_and_ordered() -> None:
    sources = [make_source(9, scripted=(), random_incidents=True) for _ in range(2)]
    for s in sources:
        for _ in s.ticks(2_000):
            pass
    assert sources[0].ground_truth() == sources[1].ground_truth()
    onsets = [lb.onset_ms for lb in sources[0].ground_truth()]
    assert onsets == sorted(onsets) and len(onsets) >= 10


def test_ticks_continue_and_timestamps_bounded() -> None:
    src = SyntheticSource(1, START_MS, 5_000)
    for k, batch in enumerate(src.ticks(50)):
        tick_ts = START_MS + k * 5_000
        assert all(e.value["ts"] <= tick_ts for e in batch)
        assert all(e.value["ts"] > tick_ts - 5_000 for e in batch if k > 0)
    nxt = next(src.ticks())
    assert max(e.value["ts"] for e in nxt) == START_MS + 50 * 5_000


def test_events_limit() -> None:
    assert len(list(make_source().events(limit=123))) == 123
