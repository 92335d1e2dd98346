"""When incidents and chaos experiments happen, their labels and their events."""

from __future__ import annotations

from dataclasses import dataclass, replace

from dharma.synthetic.estate import Resource, infra_event
from dharma.synthetic.incidents import CATALOGUE, CHAOS_FAULTS, ActiveIncident
from dharma.synthetic.metrics import Series
from dharma.synthetic.model import Emission, Label, derive_rng, new_id


@dataclass(frozen=True)
class ScriptedIncident:
    """An incident placed by hand (tests, demos) instead of drawn at random."""

    category: str
    source: str
    start_tick: int
    duration_ticks: int
    magnitude: float | None = None
    chaos: bool = False

    @classmethod
    def parse(cls, spec: str, ticks_per_second: float) -> ScriptedIncident:
        """An incident from ``CATEGORY:RESOURCE@SECONDS`` (wall-clock seconds into a run
        of ``ticks_per_second``), lasting its category's shortest duration.

        >>> ScriptedIncident.parse("memory_leak:web-server-01@60s", ticks_per_second=4)
        ScriptedIncident(category='memory_leak', source='web-server-01', start_tick=240, \
duration_ticks=60, magnitude=None, chaos=False)
        """
        category, sep, rest = spec.partition(":")
        source, at, when = rest.partition("@")
        if not (sep and at and source) or category not in CATALOGUE:
            raise ValueError(f"{spec!r}: expected CATEGORY:RESOURCE@SECONDS with CATEGORY one "
                             f"of {', '.join(sorted(CATALOGUE))}")
        try:
            seconds = float(when.removesuffix("s"))
        except ValueError:
            raise ValueError(f"{spec!r}: {when!r} is not a number of seconds") from None
        start = max(0, round(seconds * ticks_per_second))
        return cls(category, source, start, CATALOGUE[category].duration[0])


@dataclass(frozen=True)
class IncidentConfig:
    """How often incidents happen and how much of them is announced on the bus.

    Parameters
    ----------
    incidents_per_day, chaos_per_day
        Expected random onsets per simulated day (``day_length_ms``).
    warmup_ticks
        No random incident starts before this tick (nor before a tenth of a
        simulated day), so detectors can warm up.
    cooldown_ticks
        Quiet ticks kept on a resource after an incident before the next one.
    delayed_fraction, delay_ticks
        Fraction of incidents whose ``incident``/``open`` event is emitted
        ``delay_ticks`` after the onset rather than at it (detectors get a head start).
    remediation_fraction
        Fraction of incidents closed by a remediation (requested, started, succeeded).
    emit_incident_events
        When false, incidents show only in the metrics (labels still record them).
    scripted
        Incidents placed by hand, in addition to the random ones.
    executor
        The estate as an executor: no scripted ``incident``/``remediation`` events; an
        incident (not a chaos experiment) stays at its plateau after its drawn duration
        until the remediation that heals it (:meth:`IncidentScheduler.heal`), or until
        ``persist_factor`` times its duration (so a demo never wedges).
    """

    incidents_per_day: float = 6.0
    chaos_per_day: float = 1.0
    warmup_ticks: int = 30
    cooldown_ticks: int = 10
    delayed_fraction: float = 0.5
    delay_ticks: int = 6
    remediation_fraction: float = 0.6
    emit_incident_events: bool = True
    scripted: tuple[ScriptedIncident, ...] = ()
    executor: bool = False
    persist_factor: int = 6


class IncidentScheduler:
    """Draws incidents tick by tick, overlays them and queues their events."""

    def __init__(
        self,
        resources: list[Resource],
        config: IncidentConfig,
        seed: int,
        start_ms: int,
        interval_ms: int,
        ticks_per_day: float,
    ) -> None:
        self.resources = {r.resource_id: r for r in resources}
        self.config = config
        self.rng = derive_rng(seed, "incidents")
        self.id_rng = derive_rng(seed, "incident-ids")
        self.start_ms, self.interval_ms = start_ms, interval_ms
        self.ticks_per_day = ticks_per_day
        self.max_duration = max(6, int(ticks_per_day // 6))
        self.active: list[ActiveIncident] = []
        self.labels: list[Label] = []
        self.pending: dict[int, list[Emission]] = {}
        self.busy_until: dict[str, int] = {}
        for s in config.scripted:
            if s.source not in self.resources:
                raise ValueError(f"no resource {s.source!r} in the estate; choose from "
                                 f"{', '.join(self.resources)}")
            if not CATALOGUE[s.category].affected(self.resources[s.source].asset_type):
                raise ValueError(f"{s.category} cannot hit {s.source}")

    def ts(self, tick: int) -> int:
        """Timestamp of ``tick``."""
        return self.start_ms + tick * self.interval_ms

    def step(self, tick: int) -> list[Emission]:
        """Start what is due at ``tick``; return the incident events due at it."""
        self.active = [a for a in self.active if a.end_tick > tick]
        for s in self.config.scripted:
            if s.start_tick == tick:
                self._start(tick, s.category, s.source, s.duration_ticks, s.magnitude, s.chaos)
        p_incident = self.config.incidents_per_day / self.ticks_per_day
        p_chaos = self.config.chaos_per_day / self.ticks_per_day
        draw_incident, draw_chaos = self.rng.random(), self.rng.random()
        if tick >= min(self.config.warmup_ticks, int(self.ticks_per_day // 10)):
            if draw_incident < p_incident:
                self._start_random(tick, chaos=False)
            if draw_chaos < p_chaos:
                self._start_random(tick, chaos=True)
        return self.pending.pop(tick, [])

    def apply(self, values: dict[Series, float], tick: int) -> None:
        """Overlay every active incident on the baseline ``values``."""
        for a in self.active:
            a.apply(values, tick)

    def affecting(self, resource_id: str, tick: int) -> ActiveIncident | None:
        """The incident active on ``resource_id`` at ``tick``, if any."""
        return next(
            (a for a in self.active if a.label.source == resource_id and a.active(tick)), None
        )

    def _start_random(self, tick: int, chaos: bool) -> None:
        names = list(CHAOS_FAULTS.values()) if chaos else sorted(CATALOGUE)
        category = CATALOGUE[self.rng.choice(names)]
        lo, hi = category.duration
        duration = max(4, min(self.rng.randint(lo, hi), self.max_duration))
        horizon = tick + duration + self.config.cooldown_ticks
        free = [
            r
            for r in self.resources.values()
            if category.affected(r.asset_type)
            and self.busy_until.get(r.resource_id, -1) <= tick
            and not self._scripted_between(r.resource_id, tick, horizon)
        ]
        if not free:
            return
        source = self.rng.choice(free).resource_id
        self._start(tick, category.name, source, duration, None, chaos)

    def _scripted_between(self, source: str, first: int, last: int) -> bool:
        return any(
            s.source == source and first <= s.start_tick <= last for s in self.config.scripted
        )

    def _start(
        self, tick: int, name: str, source: str, duration: int, magnitude: float | None, chaos: bool
    ) -> None:
        category = CATALOGUE[name]
        mag = magnitude if magnitude is not None else self.rng.uniform(*category.magnitude)
        incident_id = new_id(self.id_rng, "chaos-" if chaos else "inc-")
        persists = self.config.executor and not chaos
        end = tick + duration * (self.config.persist_factor if persists else 1)
        label = Label(
            incident_id,
            name,
            source,
            category.affected(self.resources[source].asset_type),
            self.ts(tick),
            self.ts(end),
            category.severity,
            chaos,
        )
        self.active.append(ActiveIncident(label, category, mag, tick, end, tick + duration))
        self.labels.append(label)
        self.busy_until[source] = end + self.config.cooldown_ticks
        if chaos:
            self._queue_chaos(label, tick, end)
        elif self.config.emit_incident_events and not persists:
            self._queue_incident(label, tick, end)

    def heal(self, source: str, action: str, tick: int) -> Label | None:
        """End, at ``tick``, the incident on ``source`` that ``action`` heals (its
        category's remediation; chaos experiments run their course); its label, ended."""
        found = next((a for a in self.active if a.label.source == source and not a.label.chaos
                      and a.category.remediation == action and a.active(tick)), None)
        if found is None:
            return None
        ended = replace(found.label, end_ms=self.ts(tick))
        self.labels[self.labels.index(found.label)] = found.label = ended
        found.end_tick = tick
        self.busy_until[source] = tick + self.config.cooldown_ticks
        return ended

    def _queue(self, tick: int, kind: str, source: str, attrs: dict[str, object]) -> None:
        event = infra_event(self.id_rng, self.ts(tick), kind, source, attrs)
        self.pending.setdefault(tick, []).append(event)

    def _queue_chaos(self, label: Label, start: int, end: int) -> None:
        fault = next(f for f, c in CHAOS_FAULTS.items() if c == label.category)
        duration_s = (end - start) * self.interval_ms // 1000
        for tick, status in ((start, "started"), (end, "ended")):
            self._queue(
                tick,
                "chaos_experiment",
                label.source,
                {
                    "experiment_id": label.incident_id,
                    "fault": fault,
                    "status": status,
                    "duration_s": duration_s,
                    "blast_radius": [label.source],
                },
            )

    def _queue_incident(self, label: Label, start: int, end: int) -> None:
        category = CATALOGUE[label.category]
        delayed = self.rng.random() < self.config.delayed_fraction
        opened = min(start + self.config.delay_ticks, end - 1) if delayed else start
        base = {
            "incident_id": label.incident_id,
            "severity": label.severity,
            "title": f"{category.title} on {label.source}",
            "category": label.category,
        }
        self._queue(opened, "incident", label.source, {**base, "status": "open"})
        if self.rng.random() < self.config.remediation_fraction:
            rem_id = new_id(self.id_rng, "rem-")
            for back, status in ((3, "requested"), (2, "started"), (1, "succeeded")):
                self._queue(
                    max(opened, end - back),
                    "remediation",
                    label.source,
                    {
                        "remediation_id": rem_id,
                        "action": category.remediation,
                        "status": status,
                        "reason": f"{label.category} on {label.source}",
                        "incident_id": label.incident_id,
                    },
                )
        self._queue(end, "incident", label.source, {**base, "status": "resolved"})
