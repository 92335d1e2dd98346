"""Where the CMDB's state lives, and the rows its stores take.

The CMDB keeps no Faust table: its state is the change history in PostgreSQL
(:mod:`dharma.sinks.asset_changes`, the source of truth) and the graph built from it
(:mod:`dharma.sinks.graph`).  These convert between the batch step's values and
those stores' rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from dharma.agents.cmdb.logic import AssetState, Change, EdgeState, Kind, project_histories
from dharma.sinks.asset_changes import ChangeRow
from dharma.sinks.graph import RELATIONS, GraphRows

__all__ = ["change_of", "graph_rows", "project_stored", "row_of"]

_STATEFUL = ("asset", "dependency")


def row_of(change: Change) -> ChangeRow:
    """``change`` as ``asset_changes`` stores it."""
    return ChangeRow(change.event_id, change.ts, change.kind, change.key, change.resource_id,
                     change.action, dict(change.attributes))


def change_of(row: ChangeRow) -> Change:
    """A stored asset or dependency change read back."""
    return Change(row.event_id, row.ts, cast(Kind, row.kind), row.resource_id, row.action,
                  row.attributes)


def project_stored(histories: Mapping[str, Sequence[ChangeRow]]
                   ) -> tuple[list[AssetState], list[EdgeState]]:
    """The batch step over histories as ``asset_changes`` returns them (the notes other
    capabilities add to an asset's history, such as self-healing's remediations, are
    history only: they change no state)."""
    changes = {key: [change_of(r) for r in rows if r.kind in _STATEFUL]
               for key, rows in histories.items()}
    return project_histories({key: kept for key, kept in changes.items() if kept})


def graph_rows(assets: Sequence[AssetState], edges: Sequence[EdgeState]) -> GraphRows:
    """The states as one graph write: asset rows, and edge rows per relation."""
    by_relation: dict[str, list[dict[str, Any]]] = {r: [] for r in RELATIONS}
    for edge in edges:
        by_relation[edge.relation].append(edge.row())
    return [a.row() for a in assets], by_relation
