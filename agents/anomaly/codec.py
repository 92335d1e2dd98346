"""Checkpoints of a series' detector and alert state: versioned plain data, never code.

A checkpoint is ``zlib(msgpack(envelope))`` with the envelope::

    {"v": CHECKPOINT_VERSION,
     "detector": SeriesDetector.to_state(),   # baseline, lik, hist, lik2, clock, counters
     "alert": episode_state(Episode)}     # the series' alert episode (streams.alerting)

Every part writes its own learned state (``to_state``) and reads it back
(``load_state`` / :func:`episode_from_state`) with a validating
:class:`~dharma.agents.anomaly.model.fields.Fields` reader: ints, floats,
``None``, lists of floats and float32 arrays as little-endian bytes; no class
name, nothing callable, nothing imported by name. The configuration is not in
a checkpoint: decoding builds a detector from the worker's configuration and
fills in what it had learned, so array lengths are checked against that
configuration. Anything else, whatever the bytes, raises
:class:`~dharma.streams.errors.BrokenCheckpoint` and the series starts afresh.

**Adding a field** (say ``self._peak`` to ``SeriesDetector``): write it in the
part's ``to_state`` (``"peak": self._peak``), read it in its ``load_state``
with the matching check (``self._peak = state.number("peak", lo=0.0)``), and
bump :data:`CHECKPOINT_VERSION`. Checkpoints of the old layout are then
refused as of another version (each series warms up once after the upgrade)
instead of being read without the field; ``tests/unit/anomaly/test_anomaly_codec.py``
pins the layout and fails until the version is bumped. Bump it too when the
meaning of a field changes.

>>> from dharma.agents.anomaly.logic import make_detector
>>> codec = CheckpointCodec(make_detector)
>>> state = SeriesState(make_detector())
>>> state.detector.learn_one({"value": 1.0, "timestamp": 0})
>>> back = codec.decode(codec.encode(state))
>>> back.detector.to_state() == state.detector.to_state(), back.alert == state.alert
(True, True)
>>> codec.decode(b"\\x80\\x04K\\x01.")  # a pickle  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
dharma.streams.errors.BrokenCheckpoint: format: not a compressed checkpoint (...)
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import msgpack

from dharma.agents.anomaly.logic import SeriesDetector, SeriesState
from dharma.agents.anomaly.model.fields import INT64_MIN, Fields
from dharma.streams.alerting import Episode
from dharma.streams.errors import BrokenCheckpoint

__all__ = ["CHECKPOINT_VERSION", "CheckpointCodec", "SeriesState", "episode_from_state",
           "episode_state"]

#: Layout of the envelope and of every part's state; see "Adding a field" above.
CHECKPOINT_VERSION = 3
#: Largest checkpoint read (on the topic, compressed); one is about 5 KB.
MAX_CHECKPOINT_BYTES = 64 * 1024
#: Largest checkpoint once decompressed (bounds what a small hostile record can expand to).
MAX_STATE_BYTES = 256 * 1024
#: Longest source or metric name kept in an episode (``streams.records.MAX_NAME``).
MAX_NAME = 256


def episode_state(episode: Episode) -> dict[str, Any]:
    """An alert episode as plain data (``model/fields.py``); its subject is the series'
    metric, under the key ``metric`` (the layout of version 3)."""
    return {"firing_since": episode.firing_since, "last_sent": episode.last_sent,
            "normal_since": episode.normal_since, "normal_count": episode.normal_count,
            "peak": episode.peak, "last_ts": episode.last_ts, "source": episode.source,
            "metric": episode.subject}


def episode_from_state(state: Fields) -> Episode:
    """Inverse of :func:`episode_state`, validated (event times are epoch ms)."""
    return Episode(firing_since=state.opt_integer("firing_since", lo=INT64_MIN),
                   last_sent=state.opt_integer("last_sent", lo=INT64_MIN),
                   normal_since=state.opt_integer("normal_since", lo=INT64_MIN),
                   normal_count=state.integer("normal_count"),
                   peak=state.number("peak", lo=0.0, hi=1.0),
                   last_ts=state.opt_integer("last_ts", lo=INT64_MIN),
                   source=state.text("source", MAX_NAME), subject=state.text("metric", MAX_NAME))


class CheckpointCodec:
    """Encode a :class:`SeriesState` as a checkpoint, and decode one, validated.

    Parameters
    ----------
    factory
        A fresh detector of the worker's configuration; a decoded checkpoint is
        loaded into one.
    """

    def __init__(self, factory: Callable[[], SeriesDetector]) -> None:
        self.factory = factory

    def encode(self, state: SeriesState) -> bytes:
        """The checkpoint of ``state``."""
        envelope = {"v": CHECKPOINT_VERSION, "detector": state.detector.to_state(),
                    "alert": episode_state(state.alert)}
        return zlib.compress(msgpack.packb(envelope, use_bin_type=True), 1)

    def decode(self, blob: object) -> SeriesState:
        """The state in checkpoint ``blob``; :class:`BrokenCheckpoint` if it is not one of
        this version and configuration."""
        data = _unpack(blob)
        if not isinstance(data, dict) or type(data.get("v")) is not int:
            raise BrokenCheckpoint("format", "not a checkpoint envelope")
        if data["v"] != CHECKPOINT_VERSION:
            raise BrokenCheckpoint("version", f"layout {data['v']}, this is {CHECKPOINT_VERSION}")
        envelope = Fields(data, "checkpoint")
        envelope.integer("v")
        detector = self.factory()
        detector.load_state(envelope.part("detector"))
        alert = episode_from_state(envelope.part("alert"))
        envelope.done()
        return SeriesState(detector, alert)


def _unpack(blob: object) -> Any:
    """The msgpack value in ``blob``, within the size bounds, or ``BrokenCheckpoint``."""
    if type(blob) is not bytes:
        raise BrokenCheckpoint("format", f"a {type(blob).__name__}, not bytes")
    if len(blob) > MAX_CHECKPOINT_BYTES:
        raise BrokenCheckpoint("format", f"{len(blob)} bytes, more than {MAX_CHECKPOINT_BYTES}")
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(blob, MAX_STATE_BYTES)
    except zlib.error as exc:
        raise BrokenCheckpoint("format", f"not a compressed checkpoint ({exc})") from None
    if not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
        raise BrokenCheckpoint("format", "truncated, trailing data, or larger than "
                                         f"{MAX_STATE_BYTES} bytes decompressed")
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several types (ValueError, ExtraData, ...)
        raise BrokenCheckpoint("format", f"not msgpack ({type(exc).__name__})") from None
