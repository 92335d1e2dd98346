"""Where the CMDB's state lives, and the rows its stores take.

The CMDB keeps no Faust table: its state is the change history in PostgreSQL
(:mod:`dharma.sinks.asset_changes`, the source of truth) and the graph built from it
(:mod:`dharma.sinks.graph`).  These convert between the batch step's values and
those stores' rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from dharma.agents.cmdb.logic import AssetState, Change, EdgeState, Kind
from dharma.sinks.asset_changes import ChangeRow
from dharma.sinks.graph import RELATIONS, GraphRows

__all__ = ["change_of", "graph_rows", "row_of"]


def row_of(change: Change) -> ChangeRow:
    """``change`` as ``asset_changes`` stores it."""
    return ChangeRow(change.event_id, change.ts, change.kind, change.key, change.resource_id,
                     change.action, dict(change.attributes))


def change_of(row: ChangeRow) -> Change:
    """A stored change read back (the table is written by the CMDB only)."""
    return Change(row.event_id, row.ts, cast(Kind, row.kind), row.resource_id, row.action,
                  row.attributes)


def graph_rows(assets: Sequence[AssetState], edges: Sequence[EdgeState]) -> GraphRows:
    """The states as one graph write: asset rows, and edge rows per relation."""
    by_relation: dict[str, list[dict[str, Any]]] = {r: [] for r in RELATIONS}
    for edge in edges:
        by_relation[edge.relation].append(edge.row())
    return [a.row() for a in assets], by_relation
