"""The accrual loop: ledgers in, cost rows out.

Every hour row is written once the hour has closed (wall clock: a live asset costs
until now), and every row is recomputed from the asset's whole ledger, never
incrementally: a row is a function of the set of lifecycle events, so a replay, a
second worker or a restart writes the same row again and the store keeps it as is.

A batch that adds an event dated before what was already accrued for its asset is a
late (or out-of-order) event: the hours from the event's hour up to the accrued
point are recomputed, compared with the stored ones, and every hour that differs is
revised and logged as a correction (its previous value kept); the day and month rows
over the same span are revised with them.  Hours the asset no longer lived in (a
late ``retired``) are revised to zero rather than left standing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from faust.types import EventT

from dharma.agents.cost.logic import (
    HOUR_MS,
    Granularity,
    Lifecycle,
    Segment,
    WindowCost,
    merge,
    rate_at,
    segments,
    service_of,
    window_costs,
    windows,
)
from dharma.agents.cost.state import MAX_EVENTS, Ledger, local_assets
from dharma.sinks.costs import Correction, CostRow, CostStore
from dharma.streams.checkpoint import TypedTable
from dharma.streams.errors import BrokenCheckpoint, ContractViolation, RejectedEvent
from dharma.streams.metrics import PipelineMetrics

logger = logging.getLogger(__name__)

__all__ = ["Accountant", "admitted", "to_rows"]

E = TypeVar("E")  # what a step came with (its event)

_GRANULARITIES: tuple[Granularity, ...] = ("hour", "day", "month")


_TENTH_NANO = Decimal("1e-10")


def _money(cost: float | None) -> Decimal | None:
    """Costs are stored exactly to 1e-10 USD: the same cost always makes the same row."""
    return None if cost is None else Decimal(cost).quantize(_TENTH_NANO)


def _ceil_hour(ts: int) -> int:
    return ts + (-ts) % HOUR_MS


def to_rows(resource_id: str, segs: list[Segment], costs: Iterable[WindowCost],
            currency: str) -> list[CostRow]:
    """Cost rows of ``resource_id`` for ``costs`` (FOCUS names in :mod:`~dharma.sinks.costs`)."""
    out = []
    for w in costs:
        p = w.placement
        out.append(CostRow(resource_id, p.name, p.asset_type, w.start, w.end, w.granularity,
                           _money(w.cost), currency, service_of(p), p.region, p.provider, p.team,
                           p.env, p.instance_type, rate_at(segs, w.end - 1), w.unpriced_hours))
    return out


def admitted(ledger: Ledger, steps: Sequence[tuple[E, Lifecycle]]
             ) -> tuple[list[tuple[E, Lifecycle]], list[tuple[E, RejectedEvent]]]:
    """The steps new to ``ledger``, and those refused: an event id it holds for another
    step (the first stored is kept: a forger cannot rewrite history by replaying an
    id), or a ledger already holding :data:`MAX_EVENTS` events."""
    known = {e.event_id: e for e in ledger.events}
    new: list[tuple[E, Lifecycle]] = []
    refused: list[tuple[E, RejectedEvent]] = []
    for event, step in steps:
        held = known.get(step.event_id)
        if held is None and len(known) >= MAX_EVENTS:
            refused.append((event, ContractViolation(
                f"{step.resource_id} holds {MAX_EVENTS} lifecycle events already")))
        elif held is None:
            known[step.event_id] = step
            new.append((event, step))
        elif held != step:
            refused.append((event, ContractViolation(
                f"conflict: event id {step.event_id} is stored for another step")))
    return new, refused


@dataclass
class Accountant:
    """Writes the cost rows of the assets whose ledgers this worker holds."""

    ledgers: TypedTable[Ledger]
    store: CostStore
    metrics: PipelineMetrics
    currency: str = "USD"
    #: Per asset, the end of its last hour row; None: asked, it has none.
    accrued: dict[str, int | None] = field(default_factory=dict)

    def ledger(self, resource_id: str) -> Ledger:
        """The asset's ledger; a refused or foreign record starts it afresh."""
        try:
            ledger = self.ledgers.get(resource_id)
        except BrokenCheckpoint:
            return Ledger(resource_id)
        return ledger if ledger.resource_id == resource_id else Ledger(resource_id)

    async def apply(self, batch: Sequence[tuple[EventT, Lifecycle]]
                    ) -> list[tuple[EventT, RejectedEvent]]:
        """Add a batch's lifecycle events to their ledgers and correct what late ones
        change; the events refused (an id the ledger holds for another step, a full
        ledger)."""
        grouped: dict[str, list[tuple[EventT, Lifecycle]]] = {}
        for event, step in batch:
            grouped.setdefault(step.resource_id, []).append((event, step))
        befores = {r: self.ledger(r) for r in grouped}
        # an asset seen for the first time has nothing accrued to correct
        await self._load_accrued([r for r, before in befores.items() if before.events])
        refused: list[tuple[EventT, RejectedEvent]] = []
        for resource_id, steps in grouped.items():
            before = befores[resource_id]
            new, rejected = admitted(before, steps)
            refused += rejected
            if not new:
                continue  # replays
            events = merge(before.events, (s for _, s in new))
            accrued = self.accrued.get(resource_id)
            earliest = min(s.ts for _, s in new)
            if accrued is not None and earliest < accrued:
                # the store first: a batch that fails here is redelivered (or redriven) to
                # a ledger without its events, and corrects again
                await self._correct(resource_id, segments(events),
                                    earliest - earliest % HOUR_MS, accrued)
            self.ledgers.set(resource_id, Ledger(resource_id, events), new[-1][0])
        return refused

    def local(self) -> list[str]:
        """The assets whose ledgers this worker holds."""
        return local_assets(self.ledgers)

    async def tick(self, now: int, assets: list[str]) -> int:
        """Accrue ``assets`` up to the last closed hour before ``now``; rows written."""
        until = now - now % HOUR_MS
        await self._load_accrued(assets)
        written = 0
        for resource_id in assets:
            segs = segments(self.ledger(resource_id).events)
            if not segs:
                continue
            start = self.accrued.get(resource_id)
            if start is None:
                start = segs[0].start - segs[0].start % HOUR_MS
            last = segs[-1].end
            stop = until if last is None else min(until, _ceil_hour(last))
            if stop <= start:
                continue
            rows = [r for g in _GRANULARITIES
                    for r in to_rows(resource_id, segs, window_costs(segs, g, start, stop, stop),
                                     self.currency)]
            written += await self._write(rows)
            self.accrued[resource_id] = stop
        return written

    async def _load_accrued(self, resource_ids: list[str]) -> None:
        unknown = [r for r in resource_ids if r not in self.accrued]
        if unknown:
            found = await self.store.accrued(unknown)
            self.accrued.update({r: found.get(r) for r in unknown})

    async def _correct(self, resource_id: str, segs: list[Segment], start: int, end: int) -> None:
        """Recompute ``[start, end)`` of an asset; revise and log what changed."""
        if not segs:
            return
        stored = await self.store.hours(resource_id, start, end)
        rows: list[CostRow] = []
        for g in _GRANULARITIES:
            costs = self._revised(segs, g, start, end, stored)
            rows += to_rows(resource_id, segs, costs, self.currency)
        corrections = []
        for row in rows:
            old = stored.get(row.start) if row.granularity == "hour" else None
            if old is not None and (old[0], old[1]) != (row.cost, row.unpriced_hours):
                corrections.append((Correction(resource_id, row.start, old[0], row.cost, old[1],
                                               row.unpriced_hours), old[2] + 1))
        await self._write(rows)
        if corrections:
            await self.store.correct(corrections)
            self.metrics.cost_corrections.inc(len(corrections))
            logger.info("cost of %s corrected for %d hour(s) from %d", resource_id,
                        len(corrections), start)

    @staticmethod
    def _revised(segs: list[Segment], granularity: Granularity, start: int, end: int,
                 stored_hours: Collection[int]) -> list[WindowCost]:
        """The windows of ``[start, end)`` the asset lived in, and at zero those it no
        longer lived in but whose stored hours say it did."""
        alive = {w.start: w for w in window_costs(segs, granularity, start, end, end)}
        placement = segs[-1].placement
        return [alive.get(lo) or WindowCost(lo, hi, granularity, 0.0, 0.0, placement)
                for lo, hi in windows(granularity, start, end)
                if lo in alive or any(lo <= h < hi for h in stored_hours)]

    async def _write(self, rows: list[CostRow]) -> int:
        written = await self.store.flush(rows)
        for g in _GRANULARITIES:
            if n := sum(1 for r in rows if r.granularity == g):
                self.metrics.cost_rows.labels(g).inc(n)
        return written
