"""The synthetic source: an estate's telemetry and events on a simulated clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from dharma.synthetic.access import AccessConfig, AccessSimulator, AccessTruth
from dharma.synthetic.bad import bad_sample
from dharma.synthetic.estate import EstateConfig, build_estate, estate_events
from dharma.synthetic.executor import EstateExecutor
from dharma.synthetic.metrics import UNITS, BaselineModel
from dharma.synthetic.model import DAY_MS, METRICS_TOPIC, Emission, Label, derive_rng
from dharma.synthetic.ops import Deployments, deployment_events, health_check
from dharma.synthetic.schedule import IncidentConfig, IncidentScheduler


class SyntheticSource:
    """Deterministic telemetry, infrastructure events and access logs for a small estate.

    Tick ``k`` is at ``start_ms + k * sample_interval_ms``; it carries one sample of
    every series, the infrastructure events due (assets and dependencies at tick
    0) and the ``audit.logs`` events of the interval ending at it, so no
    timestamp exceeds the tick's. The source is a stateful iterator: calling
    :meth:`ticks` again continues where the previous call stopped.

    Parameters
    ----------
    seed
        Seed of every random stream (metrics, incidents, events, access).
    start_ms
        Timestamp of tick 0, epoch milliseconds.
    sample_interval_ms
        Simulated time between ticks.
    estate
        Size and placement of the estate.
    day_length_ms
        Length of a simulated day (seasonality period); short for demos.
    incident_rate
        Expected random incident onsets per simulated day (overrides ``incidents``).
    incidents, access
        Detailed incident and access configuration.
    deployments_per_day
        Expected deployments per simulated day.
    health_check_every
        Ticks between health checks of one resource.
    bad_fraction
        Probability per sample of an extra deliberately bad ``metrics.raw`` payload.
    peak_rps
        Total requests per second entering the web tier at the daily peak.

    Examples
    --------
    >>> src = SyntheticSource(seed=1, start_ms=1_700_000_000_000)
    >>> first = next(src.ticks())
    >>> first[0].value["type"], first[0].key
    ('asset', 'db-primary-01')
    >>> len(src.ground_truth())
    0
    """

    def __init__(
        self,
        seed: int,
        start_ms: int,
        sample_interval_ms: int = 10_000,
        *,
        estate: EstateConfig | None = None,
        day_length_ms: int = DAY_MS,
        incident_rate: float | None = None,
        incidents: IncidentConfig | None = None,
        access: AccessConfig | None = None,
        deployments_per_day: float = 8.0,
        health_check_every: int = 6,
        bad_fraction: float = 0.0,
        peak_rps: float = 600.0,
    ) -> None:
        if sample_interval_ms <= 0 or day_length_ms <= 0:
            raise ValueError("sample_interval_ms and day_length_ms must be positive")
        self.seed, self.start_ms, self.interval_ms = seed, start_ms, sample_interval_ms
        self.day_length_ms = day_length_ms
        self.resources = build_estate(estate or EstateConfig())
        config = incidents or IncidentConfig()
        if incident_rate is not None:
            config = replace(config, incidents_per_day=incident_rate)
        self.ticks_per_day = day_length_ms / sample_interval_ms
        self.metrics = BaselineModel(
            self.resources, derive_rng(seed, "metrics"), day_length_ms, peak_rps
        )
        self.scheduler = IncidentScheduler(
            self.resources, config, seed, start_ms, sample_interval_ms, self.ticks_per_day
        )
        self.events_rng = derive_rng(seed, "events")
        self.deployments = Deployments(
            self.resources,
            derive_rng(seed, "deployments"),
            deployments_per_day / self.ticks_per_day,
        )
        self.access = AccessSimulator(
            access or AccessConfig(), seed, day_length_ms, sample_interval_ms
        )
        self.health_check_every = max(1, health_check_every)
        self.bad_fraction = bad_fraction
        self.bad_rng = derive_rng(seed, "bad-stream")
        self.executor = EstateExecutor(self.scheduler, sample_interval_ms)
        self.tick = 0

    def series_count(self) -> int:
        """Number of (source, metric) series, i.e. metric samples per tick."""
        return len(self.metrics.series())

    def events_per_tick(self) -> float:
        """Rough mean number of emissions per tick (for pacing a producer)."""
        health = len(self.resources) / self.health_check_every
        access = self.access.config.requests_per_tick * 0.5
        return self.series_count() * (1 + self.bad_fraction) + health + access + 0.05

    def ts_of(self, tick: int) -> int:
        """Timestamp of ``tick``."""
        return self.start_ms + tick * self.interval_ms

    def ticks(self, count: int | None = None) -> Iterator[list[Emission]]:
        """Yield the emissions of each tick, ``count`` ticks (forever when None)."""
        produced = 0
        while count is None or produced < count:
            yield self._step()
            produced += 1

    def events(self, limit: int | None = None) -> Iterator[Emission]:
        """Emissions one by one, at most ``limit`` (forever when None)."""
        sent = 0
        for batch in self.ticks():
            for emission in batch:
                if limit is not None and sent >= limit:
                    return
                yield emission
                sent += 1

    def execute(self, request: dict[str, Any]) -> None:
        """Answer a remediation request (a decoded ``infrastructure.events`` value) from
        the next tick on: see :mod:`dharma.synthetic.executor`.  Meant for executor mode
        (``IncidentConfig(executor=True)``), where incidents wait for their remediation."""
        self.executor.execute(request, self.tick)

    def ground_truth(self) -> list[Label]:
        """Labels of every incident and chaos experiment started so far."""
        return list(self.scheduler.labels)

    def access_truth(self) -> list[AccessTruth]:
        """Risks of every ``audit.logs`` event emitted so far."""
        return list(self.access.truth)

    def _step(self) -> list[Emission]:
        tick, ts = self.tick, self.ts_of(self.tick)
        out: list[Emission] = []
        if tick == 0:
            out.extend(estate_events(self.resources, ts, self.events_rng))
        out.extend(self.scheduler.step(tick))
        out.extend(self.executor.step(tick))
        out.extend(deployment_events(self.events_rng, ts, self.deployments.step(tick)))
        for i, r in enumerate(self.resources):
            if (tick + i) % self.health_check_every == 0:
                incident = self.scheduler.affecting(r.resource_id, tick)
                out.append(health_check(self.events_rng, ts, r, incident))
        out.extend(self._metric_samples(tick, ts))
        out.extend(self.access.step(tick, ts))
        self.tick += 1
        return out

    def _metric_samples(self, tick: int, ts: int) -> list[Emission]:
        values = self.metrics.step(ts)
        self.scheduler.apply(values, tick)
        out = []
        for r, metric in self.metrics.series():
            value = {
                "source": r.resource_id,
                "metric": metric,
                "value": values[(r.resource_id, metric)],
                "ts": ts,
                "labels": r.labels(),
                "unit": UNITS[metric],
            }
            out.append(Emission(METRICS_TOPIC, r.resource_id, value))
            if self.bad_fraction > 0 and self.bad_rng.random() < self.bad_fraction:
                out.append(bad_sample(self.bad_rng, ts, r.resource_id, metric, UNITS[metric]))
        return out
