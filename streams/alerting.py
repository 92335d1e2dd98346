"""Alerts of every capability: one fingerprint, one id scheme, one episode, one record.

Whoever raises it, an ``alerts.notifications`` record has the same shape
(:func:`alert_record`), so a consumer (self-healing, a pager) reads every
capability's alerts alike:

* ``fingerprint``: :func:`fingerprint` of ``(source, subject, kind)``, 32 hex
  characters of SHA-256 (never Python's ``hash``): every notification of one
  alert shares it, and it keys the topic;
* ``alert_id``: :func:`alert_id`, a UUID5 of the fingerprint, status, episode
  start and time (and, when two notifications could share those, their cause),
  so a replay produces the same ids and a consumer deduplicates on it;
* ``labels`` always hold ``component`` (the capability), ``subject`` (the metric
  or other subject, ``""`` when the source is the whole subject) and
  ``episode_start`` (epoch ms, as text), besides the capability's own labels.

An :class:`Episode` is the state of one fingerprint, Alertmanager-like
(:func:`step`): it *fires* once when its condition starts to hold, is sent again
every ``repeat_interval_ms`` while it holds, and *resolves* once the condition
has been clear for ``resolve_after`` observations in a row spanning at least
``resolve_after_ms`` (all in event time).  Severity grows with the episode's
peak and duration.

A :class:`Silence` (Alertmanager semantics) withholds matching notifications
until it expires; the episode still fires and resolves.

>>> policy = AlertPolicy(resolve_after=2, resolve_after_ms=0)
>>> ep, sent = Episode(), []
>>> for ts, bad in [(1, False), (2, True), (3, True), (4, False), (5, False)]:
...     ep, notice = step(ep, policy, "web-01", "cpu", ts, 0.9 if bad else 0.1, bad)
...     sent += [(notice.status, notice.ts)] if notice else []
>>> sent
[('firing', 2), ('resolved', 5)]
>>> len(fingerprint("web-01", "cpu", "anomaly"))
32
"""

from __future__ import annotations

import fnmatch
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = ["AlertPolicy", "Episode", "Notice", "Severity", "Silence", "Status", "alert_id",
           "alert_record", "close", "cooled_down", "fingerprint", "is_silenced", "step"]

Status = Literal["firing", "resolved"]
Severity = Literal["info", "warning", "critical"]

#: Longest summary kept in a record.
MAX_SUMMARY = 500
_NAMESPACE = uuid.UUID("5f0f5a4e-8c59-4c35-9a8c-6c1c3b1c2d01")


def fingerprint(source: str, subject: str, kind: str) -> str:
    """Stable identity of an alert: 32 hex characters of SHA-256.

    >>> fingerprint("u1", "", "impossible_travel") == fingerprint("u1", "", "impossible_travel")
    True
    >>> fingerprint("web-01", "cpu", "anomaly") == fingerprint("web-01|cpu", "", "anomaly")
    False
    """
    return hashlib.sha256(f"{source}\x1f{subject}\x1f{kind}".encode()).hexdigest()[:32]


def alert_id(fp: str, status: Status, episode_start: int, ts: int, cause: str = "") -> str:
    """Deterministic id of one notification: the same inputs (a replay) give the same id.

    ``cause`` tells apart notifications of one fingerprint that share a time (the event
    that raised each, for alerts raised by single events).

    >>> alert_id("f" * 32, "firing", 1, 1) == alert_id("f" * 32, "firing", 1, 1)
    True
    >>> alert_id("f" * 32, "firing", 1, 1, "e1") == alert_id("f" * 32, "firing", 1, 1, "e2")
    False
    """
    name = f"{fp}:{status}:{episode_start}:{ts}" + (f":{cause}" if cause else "")
    return str(uuid.uuid5(_NAMESPACE, name))


def alert_record(*, kind: str, component: str, source: str, subject: str, status: Status,
                 severity: Severity, summary: str, ts: int, episode_start: int,
                 labels: dict[str, str] | None = None, cause: str = "") -> dict[str, Any]:
    """An ``alerts.notifications`` record (the Avro contract's fields).

    The common labels (``component``, ``subject``, ``episode_start``) cannot be
    overridden by the capability's own ``labels``.

    >>> r = alert_record(kind="anomaly", component="anomaly", source="web-01", subject="cpu",
    ...                  status="firing", severity="warning", summary="cpu is odd", ts=5,
    ...                  episode_start=5, labels={"metric": "cpu", "subject": "forged"})
    >>> r["fingerprint"] == fingerprint("web-01", "cpu", "anomaly")
    True
    >>> sorted(r["labels"].items())  # doctest: +NORMALIZE_WHITESPACE
    [('component', 'anomaly'), ('episode_start', '5'), ('metric', 'cpu'),
     ('subject', 'cpu')]
    """
    fp = fingerprint(source, subject, kind)
    return {
        "alert_id": alert_id(fp, status, episode_start, ts, cause),
        "fingerprint": fp,
        "status": status,
        "severity": severity,
        "kind": kind,
        "source": source,
        "summary": summary[:MAX_SUMMARY],
        "ts": ts,
        "labels": {**(labels or {}), "component": component, "subject": subject,
                   "episode_start": str(episode_start)},
    }


def cooled_down(last_ms: int | None, now_ms: int, cooldown_ms: int) -> bool:
    """Whether an alert last sent at ``last_ms`` may be sent again at ``now_ms``: never
    sent, ``cooldown_ms`` or more later, or (a clock that went back) earlier.

    >>> [cooled_down(last, now, 10) for last, now in [(None, 5), (0, 5), (0, 10), (9, 5)]]
    [True, False, True, True]
    """
    return last_ms is None or not 0 <= now_ms - last_ms < cooldown_ms


@dataclass(frozen=True)
class AlertPolicy:
    """When an episode fires, repeats and resolves, and when it is critical (event time, ms)."""

    repeat_interval_ms: int = 3_600_000
    resolve_after: int = 10
    resolve_after_ms: int = 120_000
    critical_score: float = 0.9
    critical_after_ms: int = 900_000


@dataclass(frozen=True)
class Episode:
    """State of one fingerprint: closed (``firing_since`` None) or firing since then.

    ``source`` and ``subject`` name the episode's alert (to close it when its series
    is forgotten); ``last_ts`` is the latest time observed in it, ``peak`` its highest
    score in [0, 1].
    """

    firing_since: int | None = None
    last_sent: int | None = None
    normal_since: int | None = None
    normal_count: int = 0
    peak: float = 0.0
    last_ts: int | None = None
    source: str = ""
    subject: str = ""

    def severity(self, policy: AlertPolicy, ts: int) -> Severity:
        """``critical`` for a high peak or a long episode, else ``warning``."""
        duration = ts - (self.firing_since if self.firing_since is not None else ts)
        if self.peak >= policy.critical_score or duration >= policy.critical_after_ms:
            return "critical"
        return "warning"


@dataclass(frozen=True)
class Notice:
    """A notification to send: its status, the episode it is about (as it stood), its time."""

    status: Status
    episode: Episode
    ts: int

    @property
    def start(self) -> int:
        """When the episode started firing."""
        since = self.episode.firing_since
        return since if since is not None else self.ts


def step(episode: Episode, policy: AlertPolicy, source: str, subject: str, ts: int,
         score: float, active: bool) -> tuple[Episode, Notice | None]:
    """Advance ``episode`` by one observation (``active``: its condition holds, with
    strength ``score``); the notification to send, if any."""
    if episode.firing_since is None:
        if not active:
            return episode, None
        new = Episode(firing_since=ts, last_sent=ts, peak=score, last_ts=ts,
                      source=source, subject=subject)
        return new, Notice("firing", new, ts)
    # an out-of-order observation does not take the episode back in time
    last_ts = ts if episode.last_ts is None else max(episode.last_ts, ts)
    if active:
        new = replace(episode, normal_since=None, normal_count=0,
                      peak=max(episode.peak, score), last_ts=last_ts)
    else:
        normal_since = episode.normal_since if episode.normal_since is not None else ts
        new = replace(episode, normal_since=normal_since,
                      normal_count=episode.normal_count + 1, last_ts=last_ts)
        if (new.normal_count >= policy.resolve_after
                and ts - normal_since >= policy.resolve_after_ms):
            return Episode(), Notice("resolved", new, ts)
    sent = episode.last_sent if episode.last_sent is not None else ts
    if ts - sent >= policy.repeat_interval_ms:  # still firing: send again
        new = replace(new, last_sent=ts)
        return new, Notice("firing", new, ts)
    return new, None


def close(episode: Episode) -> Notice | None:
    """The ``resolved`` notification of an open episode whose subject is being forgotten,
    dated at its last observation (so the same state gives the same id); None if closed.

    >>> ep, _ = step(Episode(), AlertPolicy(), "web-01", "cpu", 60_000, 0.9, True)
    >>> ep, _ = step(ep, AlertPolicy(), "web-01", "cpu", 120_000, 0.9, True)
    >>> close(ep).status, close(ep).ts, close(Episode())
    ('resolved', 120000, None)
    """
    if episode.firing_since is None:
        return None
    ts = episode.last_ts if episode.last_ts is not None else episode.firing_since
    return Notice("resolved", episode, ts)


@dataclass(frozen=True)
class Silence:
    """Glob matchers on source, subject and kind, active until ``ends_at_ms``.

    >>> s = Silence("s1", source="web-*", subject="*", kind="anomaly", ends_at_ms=2_000)
    >>> s.matches("web-01", "cpu", "anomaly", 1_000), s.matches("db-01", "cpu", "anomaly", 1_000)
    (True, False)
    >>> s.matches("web-01", "cpu", "anomaly", now_ms=3_000)
    False
    """

    silence_id: str
    source: str
    subject: str
    kind: str
    ends_at_ms: int

    def matches(self, source: str, subject: str, kind: str, now_ms: int) -> bool:
        return (now_ms < self.ends_at_ms and fnmatch.fnmatchcase(source, self.source)
                and fnmatch.fnmatchcase(subject, self.subject)
                and fnmatch.fnmatchcase(kind, self.kind))


def is_silenced(silences: Iterable[Silence], source: str, subject: str, kind: str,
                now_ms: int) -> bool:
    """True when any active silence matches."""
    return any(s.matches(source, subject, kind, now_ms) for s in silences)
