"""Alertmanager-style alerting on anomaly scores (pure).

One fingerprint per ``(source, metric, kind)``.  An episode *fires* once when
the series turns anomalous, *repeats* at most every ``repeat_interval_ms``
while it stays anomalous, and *resolves* once the series has been normal for
``resolve_after`` samples spanning at least ``resolve_after_ms``.  Severity
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

    def to_state(self) -> dict[str, Any]:
        """The episode as plain data (``model/fields.py``), for a checkpoint."""
        return {"firing_since": self.firing_since, "last_sent": self.last_sent,
                "normal_since": self.normal_since, "normal_count": self.normal_count,
                "peak": self.peak}

    @classmethod
    def from_state(cls, state: Fields) -> AlertState:
        """Inverse of :meth:`to_state`, validated (event times are epoch ms)."""
        return cls(firing_since=state.opt_integer("firing_since", lo=INT64_MIN),
                   last_sent=state.opt_integer("last_sent", lo=INT64_MIN),
                   normal_since=state.opt_integer("normal_since", lo=INT64_MIN),
                   normal_count=state.integer("normal_count"),
                   peak=state.number("peak", lo=0.0, hi=1.0))


def fingerprint(source: str, metric: str, kind: str = KIND) -> str:
    """Stable identity of an alert (sha256, never Python's ``hash``)."""
    return hashlib.sha256(f"{source}\x1f{metric}\x1f{kind}".encode()).hexdigest()[:16]


def step(state: AlertState, policy: AlertPolicy, source: str, metric: str, ts: int,
         score: float, anomalous: bool) -> tuple[AlertState, dict[str, Any] | None]:
    """Advance the episode by one scored sample; the alert to send, if any."""
    if anomalous:
        if state.firing_since is None:
            new = AlertState(firing_since=ts, last_sent=ts, peak=score)
            return new, _alert(new, policy, source, metric, ts, "firing")
        new = replace(state, normal_since=None, normal_count=0, peak=max(state.peak, score))
        if ts - (state.last_sent or ts) >= policy.repeat_interval_ms:
            new = replace(new, last_sent=ts)
            return new, _alert(new, policy, source, metric, ts, "firing")
        return new, None
    if state.firing_since is None:
        return state, None
    normal_since = state.normal_since if state.normal_since is not None else ts
    new = replace(state, normal_since=normal_since, normal_count=state.normal_count + 1)
    if new.normal_count >= policy.resolve_after and ts - normal_since >= policy.resolve_after_ms:
        return AlertState(), _alert(new, policy, source, metric, ts, "resolved")
    return new, None


def severity(state: AlertState, policy: AlertPolicy, ts: int) -> str:
    """``critical`` for a high peak or a long episode, else ``warning``."""
    duration = ts - (state.firing_since or ts)
    if state.peak >= policy.critical_score or duration >= policy.critical_after_ms:
        return "critical"
    return "warning"


def _alert(state: AlertState, policy: AlertPolicy, source: str, metric: str, ts: int,
           status: str) -> dict[str, Any]:
    fp = fingerprint(source, metric)
    since = state.firing_since or ts
    minutes = (ts - since) / 60_000
    summary = (f"{metric} on {source} is anomalous (peak score {state.peak:.2f})"
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
