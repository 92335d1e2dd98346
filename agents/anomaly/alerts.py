"""Alertmanager-style alerting on anomaly scores (pure).

One fingerprint per ``(source, metric, kind)``.  An episode *fires* once when
the series turns anomalous, is sent again every ``repeat_interval_ms`` while it
is firing, and *resolves* once the series has been normal for ``resolve_after``
samples in a row spanning at least ``resolve_after_ms`` (the quiet period).  Severity
grows with the peak score and the episode's duration.  Alert ids are derived
from the fingerprint and event times, so a replay produces the same ids.

>>> policy = AlertPolicy(resolve_after=2, resolve_after_ms=0)
>>> s, sent = AlertState(), []
>>> for ts, bad in [(1, False), (2, True), (3, True), (4, False), (5, False)]:
...     s, alert = step(s, policy, "web-01", "cpu", ts, 0.9 if bad else 0.1, bad)
...     sent += [alert["status"]] if alert else []
>>> sent
['firing', 'resolved']
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from typing import Any

from dharma.agents.anomaly.model.fields import INT64_MIN, Fields

KIND = "anomaly"
#: Longest source or metric name kept in an episode (``streams.records.MAX_NAME``).
MAX_NAME = 256
_NAMESPACE = uuid.UUID("5f0f5a4e-8c59-4c35-9a8c-6c1c3b1c2d01")


@dataclass(frozen=True)
class AlertPolicy:
    """When to fire, repeat and resolve (event time, milliseconds)."""

    repeat_interval_ms: int = 3_600_000
    resolve_after: int = 10
    resolve_after_ms: int = 120_000
    critical_score: float = 0.9
    critical_after_ms: int = 900_000


@dataclass(frozen=True)
class AlertState:
    """Episode state of one fingerprint."""

    firing_since: int | None = None
    last_sent: int | None = None
    normal_since: int | None = None
    normal_count: int = 0
    peak: float = 0.0
    last_ts: int | None = None  # latest time of the episode's samples
    source: str = ""  # the series of the open episode (to resolve it when the series goes idle)
    metric: str = ""

    def to_state(self) -> dict[str, Any]:
        """The episode as plain data (``model/fields.py``), for a checkpoint."""
        return {"firing_since": self.firing_since, "last_sent": self.last_sent,
                "normal_since": self.normal_since, "normal_count": self.normal_count,
                "peak": self.peak, "last_ts": self.last_ts, "source": self.source,
                "metric": self.metric}

    @classmethod
    def from_state(cls, state: Fields) -> AlertState:
        """Inverse of :meth:`to_state`, validated (event times are epoch ms)."""
        return cls(firing_since=state.opt_integer("firing_since", lo=INT64_MIN),
                   last_sent=state.opt_integer("last_sent", lo=INT64_MIN),
                   normal_since=state.opt_integer("normal_since", lo=INT64_MIN),
                   normal_count=state.integer("normal_count"),
                   peak=state.number("peak", lo=0.0, hi=1.0),
                   last_ts=state.opt_integer("last_ts", lo=INT64_MIN),
                   source=state.text("source", MAX_NAME), metric=state.text("metric", MAX_NAME))


def fingerprint(source: str, metric: str, kind: str = KIND) -> str:
    """Stable identity of an alert (sha256, never Python's ``hash``)."""
    return hashlib.sha256(f"{source}\x1f{metric}\x1f{kind}".encode()).hexdigest()[:16]


def step(state: AlertState, policy: AlertPolicy, source: str, metric: str, ts: int,
         score: float, anomalous: bool) -> tuple[AlertState, dict[str, Any] | None]:
    """Advance the episode by one scored sample; the alert to send, if any."""
    if state.firing_since is None:
        if not anomalous:
            return state, None
        new = AlertState(firing_since=ts, last_sent=ts, peak=score, last_ts=ts,
                         source=source, metric=metric)
        return new, _alert(new, policy, source, metric, ts, "firing")
    # an out-of-order sample does not take the episode back in time
    last_ts = ts if state.last_ts is None else max(state.last_ts, ts)
    if anomalous:
        new = replace(state, normal_since=None, normal_count=0, peak=max(state.peak, score),
                      last_ts=last_ts)
    else:
        normal_since = state.normal_since if state.normal_since is not None else ts
        new = replace(state, normal_since=normal_since, normal_count=state.normal_count + 1,
                      last_ts=last_ts)
        if (new.normal_count >= policy.resolve_after
                and ts - normal_since >= policy.resolve_after_ms):
            return AlertState(), _alert(new, policy, source, metric, ts, "resolved")
    sent = state.last_sent if state.last_sent is not None else ts
    if ts - sent >= policy.repeat_interval_ms:  # still firing: re-send
        new = replace(new, last_sent=ts)
        return new, _alert(new, policy, source, metric, ts, "firing")
    return new, None


def resolve_idle(state: AlertState, policy: AlertPolicy) -> dict[str, Any] | None:
    """The ``resolved`` alert of an open episode whose series stopped reporting (it is
    being forgotten), dated at its last sample, so the same state gives the same id.

    >>> policy = AlertPolicy()
    >>> s, _ = step(AlertState(), policy, "web-01", "cpu", 60_000, 0.9, True)
    >>> s, _ = step(s, policy, "web-01", "cpu", 120_000, 0.9, True)
    >>> alert = resolve_idle(s, policy)
    >>> alert["status"], alert["ts"], resolve_idle(AlertState(), policy)
    ('resolved', 120000, None)
    """
    if state.firing_since is None:
        return None
    ts = state.last_ts if state.last_ts is not None else state.firing_since
    minutes = (ts - state.firing_since) / 60_000
    summary = (f"{state.metric} on {state.source} stopped reporting {minutes:.1f} min into "
               "an anomalous episode; closed")
    return _alert(state, policy, state.source, state.metric, ts, "resolved", summary)


def severity(state: AlertState, policy: AlertPolicy, ts: int) -> str:
    """``critical`` for a high peak or a long episode, else ``warning``."""
    duration = ts - (state.firing_since if state.firing_since is not None else ts)
    if state.peak >= policy.critical_score or duration >= policy.critical_after_ms:
        return "critical"
    return "warning"


def _alert(state: AlertState, policy: AlertPolicy, source: str, metric: str, ts: int,
           status: str, summary: str | None = None) -> dict[str, Any]:
    fp = fingerprint(source, metric)
    since = state.firing_since if state.firing_since is not None else ts
    minutes = (ts - since) / 60_000
    summary = summary or (f"{metric} on {source} is anomalous (peak score {state.peak:.2f})"
                          if status == "firing" else
                          f"{metric} on {source} back to normal after {minutes:.1f} min")
    return {
        "alert_id": str(uuid.uuid5(_NAMESPACE, f"{fp}:{status}:{since}:{ts}")),
        "fingerprint": fp,
        "status": status,
        "severity": severity(state, policy, ts),
        "kind": KIND,
        "source": source,
        "summary": summary,
        "ts": since if status == "firing" and ts == since else ts,
        "labels": {"metric": metric, "episode_start": str(since)},
    }
