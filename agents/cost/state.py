"""The cost agent's table: each asset's lifecycle events (its ledger), changelog-backed.

Co-partitioned with ``infrastructure.events`` (keyed by resource id), so an asset's
ledger lives on the partition its events arrive on.  A ledger is plain data (JSON,
strictly validated when read back): a record dated beyond the clock or holding another
asset's events is refused, and the asset starts afresh from its next event.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

import faust
import orjson

from dharma.agents.cost.logic import Lifecycle
from dharma.streams.app import StreamContext
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import TypedTable, checkpoint_table
from dharma.streams.records import now_ms
from dharma.streams.topics import INFRASTRUCTURE_EVENTS

__all__ = ["LEDGER_TABLE", "MAX_EVENTS", "Ledger", "ledger_table", "local_assets"]

LEDGER_TABLE = "cost-ledgers"

#: Lifecycle events kept per asset (an asset's life has a handful of steps; a flood of
#: updates must not grow one record without bound): further events are dead-lettered,
#: and a record read back holding more is refused.  200 events fit a changelog record.
MAX_EVENTS = 200


@dataclass(frozen=True)
class Ledger:
    """The lifecycle events of one asset, in application order."""

    resource_id: str
    events: tuple[Lifecycle, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The ledger as JSON-ready data (by hand: ``asdict`` took a third of the agent's
        own time per lifecycle event)."""
        return {"resource_id": self.resource_id, "events": [_event(e) for e in self.events]}


def _event(e: Lifecycle) -> dict[str, object]:
    p = e.placement
    return {"event_id": e.event_id, "resource_id": e.resource_id, "ts": e.ts,
            "action": e.action, "hourly_cost": e.hourly_cost, "placement": {
                "name": p.name, "asset_type": p.asset_type, "team": p.team, "env": p.env,
                "provider": p.provider, "region": p.region, "instance_type": p.instance_type}}


def ledger_table(app: faust.App, ctx: StreamContext) -> TypedTable[Ledger]:
    """Ledgers by resource id; a record read back must not be dated ahead of the clock
    (beyond the worker's skew) nor hold more than :data:`MAX_EVENTS` events."""
    skew_ms = int(ctx.settings.worker.max_future_skew_s * 1000)

    def plausible(ledger: Ledger) -> None:
        if len(ledger.events) > MAX_EVENTS:
            raise ValueError(f"{len(ledger.events)} events, more than {MAX_EVENTS}")
        if ledger.events and ledger.events[-1].ts > now_ms() + skew_ms:
            raise ValueError("an event dated ahead of the clock")
        if any(e.resource_id != ledger.resource_id for e in ledger.events):
            raise ValueError(f"events of another asset than {ledger.resource_id}")

    table = checkpoint_table(app, LEDGER_TABLE, INFRASTRUCTURE_EVENTS.partitions,
                             help="Lifecycle events of each asset, for cost accrual.")
    return TypedTable(TableWriter(table, ctx.emitter), Ledger, Ledger.to_dict,
                      lambda: Ledger(""), ctx.metrics, check=plausible)


def local_assets(ledgers: TypedTable[Ledger]) -> list[str]:
    """Resource ids whose ledgers this worker holds (keys are JSON strings)."""
    out = []
    for key in list(ledgers.writer.table.data):
        with suppress(orjson.JSONDecodeError):
            if isinstance(name := orjson.loads(key), str):
                out.append(name)
    return out
