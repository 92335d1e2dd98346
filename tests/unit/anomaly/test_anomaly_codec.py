"""Detector checkpoints: exact round trips, and hostile bytes refused without running anything."""

from __future__ import annotations

import copy
import doctest
import math
import pickle
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hostile import exec_pickle, via_state_module
from hypothesis import given, settings
from hypothesis import strategies as st

from dharma.agents.anomaly import codec
from dharma.agents.anomaly.codec import CHECKPOINT_VERSION, CheckpointCodec, SeriesState
from dharma.agents.anomaly.logic import make_detector
from dharma.agents.anomaly.model import fields
from dharma.streams.alerting import Episode
from dharma.streams.errors import BrokenCheckpoint

CODEC = CheckpointCodec(make_detector)
T0_MS = 1_700_000_000_000

#: Every field of a checkpoint of the current version. A change to any part's ``to_state`` changes
#: this list: bump ``CHECKPOINT_VERSION`` (old checkpoints are then refused, not
#: misread) and update the list (see ``agents/anomaly/codec.py``, "Adding a field").
LAYOUT = {3: [
    "alert.firing_since", "alert.last_sent", "alert.last_ts", "alert.metric",
    "alert.normal_count", "alert.normal_since", "alert.peak", "alert.source",
    "detector.baseline.day.bins", "detector.baseline.day.first", "detector.baseline.day.spread",
    "detector.baseline.day.width", "detector.baseline.err", "detector.baseline.fast",
    "detector.baseline.model", "detector.baseline.n", "detector.baseline.run",
    "detector.baseline.slow", "detector.baseline.week.bins", "detector.baseline.week.first",
    "detector.baseline.week.spread", "detector.baseline.week.width",
    "detector.clock.gaps", "detector.clock.interval", "detector.clock.last", "detector.clock.pos",
    "detector.clock.seen", "detector.clock.seen_pos",
    "detector.episode.age", "detector.episode.calm", "detector.episode.hi",
    "detector.episode.lo", "detector.episode.recent",
    "detector.hist.counts", "detector.hist.hi", "detector.hist.lo",
    "detector.hist.range.filled", "detector.hist.range.highs", "detector.hist.range.lows",
    "detector.hist.range.memory", "detector.hist.range.n", "detector.hist.range.pos",
    "detector.hist.range.size", "detector.hist.total", "detector.hist.weight", "detector.late",
    "detector.lik.buf", "detector.lik.mean", "detector.lik.n", "detector.lik.pos",
    "detector.lik.sum", "detector.lik.var",
    "detector.lik2.buf", "detector.lik2.mean", "detector.lik2.n", "detector.lik2.pos",
    "detector.lik2.sum", "detector.lik2.var",
    "detector.n", "detector.quiet",
    "detector.range.filled", "detector.range.highs", "detector.range.lows",
    "detector.range.memory", "detector.range.n", "detector.range.pos", "detector.range.size",
    "v",
]}


def series(n: int, seed: int = 1, step_s: int = 300, spikes: float = 0.01) -> list[dict[str, Any]]:
    """A daily-seasonal noisy series with rare spikes, NaNs and late points."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        value = 50.0 + 10.0 * math.sin(2 * math.pi * i * step_s / 86_400) + rng.gauss(0, 1)
        roll = rng.random()
        if roll < spikes:
            value += 40.0
        elif roll < 2 * spikes:
            value = math.nan
        late = 3 if rng.random() < spikes else 0
        out.append({"value": value, "timestamp": T0_MS + (i - late) * step_s * 1000})
    return out


def warmed(n: int = 400, seed: int = 1, **config: Any) -> SeriesState:
    det = make_detector(**config)
    for x in series(n, seed):
        det.score_one(x)
        det.learn_one(x)
    return SeriesState(det, Episode(firing_since=T0_MS, last_sent=T0_MS, peak=0.9))


def scores(state: SeriesState, xs: list[dict[str, Any]]) -> list[str]:
    """Score details (repr: NaN-safe equality) of ``xs``, scored then learned."""
    out = []
    for x in xs:
        out.append(repr(state.detector.score_detail(x)))
        state.detector.learn_one(x)
    return out


def envelope(state: SeriesState) -> dict[str, Any]:
    return msgpack.unpackb(zlib.decompress(CODEC.encode(state)))


def pack(env: Any) -> bytes:
    return zlib.compress(msgpack.packb(env, use_bin_type=True))


def leaves(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out += leaves(value, path + ".") if isinstance(value, dict) else [path]
    return out


def refused(blob: object) -> str:
    """The reason ``blob`` is refused (it must be)."""
    with pytest.raises(BrokenCheckpoint) as info:
        CODEC.decode(blob)
    return info.value.reason


@pytest.mark.parametrize("module", [codec, fields])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 700), seed=st.integers(0, 10**6), step=st.sampled_from([60, 300, 3600]),
       hist_bins=st.sampled_from([0, 32]))
def test_round_trip_is_exact_and_the_restored_detector_scores_identically(
        n: int, seed: int, step: int, hist_bins: int) -> None:
    det = make_detector(hist_bins=hist_bins)
    xs = series(n + 60, seed, step)
    for x in xs[:n]:
        det.score_one(x)
        det.learn_one(x)
    state = SeriesState(det)
    codec_ = CheckpointCodec(lambda: make_detector(hist_bins=hist_bins))
    blob = codec_.encode(state)
    back = codec_.decode(blob)
    assert codec_.encode(back) == blob
    assert scores(back, xs[n:]) == scores(state, xs[n:])


@settings(max_examples=50, deadline=None)
@given(st.builds(Episode, st.none() | st.integers(0, 2**62), st.none() | st.integers(0, 2**62),
                 st.none() | st.integers(-2**62, 2**62), st.integers(0, 10**6),
                 st.floats(0.0, 1.0), st.none() | st.integers(0, 2**62),
                 st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
                 st.text(st.characters(exclude_categories=["Cs"]), max_size=40)))
def test_alert_state_round_trips(alert: Episode) -> None:
    state = SeriesState(make_detector(), alert)
    assert CODEC.decode(CODEC.encode(state)).alert == alert


def test_layout_is_pinned_to_the_version() -> None:
    env = envelope(warmed(288 * 8))  # a week and a day: both profiles exist
    assert env["detector"]["baseline"]["week"] is not None
    assert sorted(leaves(env)) == LAYOUT[CHECKPOINT_VERSION], \
        "checkpoint layout changed: bump CHECKPOINT_VERSION and update LAYOUT"


def test_checkpoint_size() -> None:
    assert len(CODEC.encode(warmed(288 * 8))) <= 20_000


def test_pickles_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    inner = exec_pickle(marker)
    for blob in (inner, zlib.compress(inner), via_state_module(inner),
                 zlib.compress(via_state_module(inner)),
                 zlib.compress(pickle.dumps(warmed(200)))):
        assert refused(blob) == "format"
    assert not marker.exists()


def test_truncated_and_extended_checkpoints_are_refused() -> None:
    blob = CODEC.encode(warmed(300))
    for cut in range(0, len(blob), 7):
        assert refused(blob[:cut]) == "format"
    assert refused(blob + b"\x00") == "format"


def test_oversized_and_expanding_records_are_refused() -> None:
    assert refused(b"x" * (codec.MAX_CHECKPOINT_BYTES + 1)) == "format"
    bomb = zlib.compress(b"\x00" * 50_000_000, 9)  # ~50 KB that expands to 50 MB
    assert len(bomb) <= codec.MAX_CHECKPOINT_BYTES
    assert refused(bomb) == "format"


@pytest.mark.parametrize("raw", [b"\x91" * 200_000 + b"\xc0",  # arrays nested 200,000 deep
                                 b"\xdd\xff\xff\xff\xff",  # an array of 4 billion items
                                 b"\xdf\xff\xff\xff\xff"])  # a map of as many
def test_nesting_and_length_bombs_are_refused(raw: bytes) -> None:
    assert refused(zlib.compress(raw)) == "format"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_are_refused(blob: bytes) -> None:
    assert refused(blob) == "format"
    assert refused(zlib.compress(blob)) in ("format", "invalid")


@pytest.mark.parametrize("value", [None, "text", 7, [1, 2], {"detector": {}}, {"v": "1"},
                                   {"v": True}, msgpack.ExtType(5, b"x")])
def test_other_msgpack_values_are_not_envelopes(value: Any) -> None:
    assert refused(pack(value)) == "format"
    assert refused(msgpack.packb(value)) == "format"  # uncompressed


def test_other_versions_are_refused() -> None:
    env = envelope(warmed(200))
    for version in (0, CHECKPOINT_VERSION + 1, -1, 2**64 - 1):
        assert refused(pack({**env, "v": version})) == "version"


def test_non_bytes_are_refused() -> None:
    for blob in ("text", bytearray(b"x"), None, 42):
        assert refused(blob) == "format"


def at(env: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    *parents, last = path.split(".")
    node = env
    for key in parents:
        node = node[key]
    return node, last


ABSURD: list[tuple[str, Any]] = [
    ("detector.baseline.err", [math.nan, 1.0, 1.0]),
    ("detector.baseline.err", [-1.0, 1.0, 1.0]),
    ("detector.baseline.fast", [0.0, 0.0]),
    ("detector.baseline.slow", math.inf),
    ("detector.baseline.model", 3),
    ("detector.baseline.n", -5),
    ("detector.baseline.n", 1.5),
    ("detector.baseline.run", True),
    ("detector.baseline.day.width", 1e-9),  # would allocate 1e14 bins
    ("detector.baseline.day.bins", b"\x00" * 12),
    ("detector.baseline.day.spread", struct.pack("<f", -1.0) * 288),
    ("detector.baseline.day", "profile"),
    ("detector.lik.buf", [0.5] * 11),
    ("detector.lik.buf", [2.0] * 10),
    ("detector.lik.sum", 1e300),
    ("detector.lik.var", -1.0),
    ("detector.lik.pos", 10),
    ("detector.hist", None),
    ("detector.hist.counts", struct.pack("<f", math.inf) * 32),
    ("detector.hist.counts", b"\x00" * 4 * 33),
    ("detector.hist.weight", 0.0),
    ("detector.hist.lo", math.nan),
    ("detector.clock.gaps", [60.0] * 16),
    ("detector.clock.gaps", [-60.0]),
    ("detector.clock.pos", 15),
    ("detector.range.lows", [0.0] * 15),
    ("detector.range.lows", [-math.inf] * 16),  # only +inf marks an empty slot
    ("detector.range.highs", [1.0, 2.0] * 8),  # the largest first
    ("detector.range.pos", 8),
    ("detector.range.size", 0),
    ("detector.range.filled", 10**9),  # more than a block holds
    ("detector.hist.range.lows", [math.nan] * 16),
    ("detector.episode.lo", 1.0),  # a band with one limit
    ("detector.episode.recent", [1.0]),  # values without an episode
    ("detector.episode.recent", [math.inf]),
    ("detector.late", 5),
    ("detector.n", 2**64 - 1),
    ("alert.peak", 1.5),
    ("alert.normal_count", -1),
    ("alert.firing_since", "yesterday"),
    ("alert.source", 7),
    ("alert.metric", "m" * 257),
    ("detector", [1, 2, 3]),
]


@pytest.mark.parametrize(("path", "value"), ABSURD)
def test_absurd_values_in_a_valid_envelope_are_refused(path: str, value: Any) -> None:
    env = envelope(warmed(400))
    node, key = at(env, path)
    node[key] = value
    assert refused(pack(env)) == "invalid"


@pytest.mark.parametrize("path", ["detector.baseline.n", "alert.peak", "detector.hist.counts"])
def test_missing_and_unknown_fields_are_refused(path: str) -> None:
    env = envelope(warmed(400))
    node, key = at(env, path)
    del node[key]
    assert refused(pack(env)) == "invalid"
    env = envelope(warmed(400))
    node, key = at(env, path)
    node[key + "_extra"] = 1
    assert refused(pack(env)) == "invalid"


def test_a_checkpoint_of_another_hist_configuration_is_refused() -> None:
    blob = CODEC.encode(warmed(300))
    assert refused_by(CheckpointCodec(lambda: make_detector(hist_bins=0)), blob) == "invalid"
    assert refused_by(CheckpointCodec(lambda: make_detector(hist_bins=16)), blob) == "invalid"
    assert refused_by(CheckpointCodec(lambda: make_detector(short=5)), blob) == "invalid"


def refused_by(codec_: CheckpointCodec, blob: bytes) -> str:
    with pytest.raises(BrokenCheckpoint) as info:
        codec_.decode(blob)
    return info.value.reason


def test_a_longer_suppression_left_is_clamped_to_the_configuration() -> None:
    env = envelope(warmed(400))
    env["detector"]["quiet"] = 10**9
    assert CODEC.decode(pack(env)).detector._quiet == make_detector().suppress


HOSTILE = st.sampled_from([None, True, -1, 0, 2**64 - 1, -(2**63), 1e308, -1e308, math.inf,
                           math.nan, "x", b"", b"\x00" * 4, [], [math.nan], {}, {"a": 1}])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_field_changed_is_refused_or_still_scores(data: st.DataObject) -> None:
    """Whatever one field holds, decoding refuses it or gives a detector that scores."""
    base = envelope(WARM_STATE)
    env = copy.deepcopy(base)
    path = data.draw(st.sampled_from(sorted(leaves(env))))
    node, key = at(env, path)
    node[key] = data.draw(HOSTILE)
    try:
        state = CODEC.decode(pack(env))
    except BrokenCheckpoint:
        return
    for x in series(30, seed=9, step_s=300):
        x["timestamp"] += 400 * 300_000
        assert 0.0 <= state.detector.score_one(x) <= 1.0
        state.detector.learn_one(x)


WARM_STATE = warmed(400)
