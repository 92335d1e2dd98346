"""``/api/v1/cmdb``: assets, an asset's blast radius drawn as a graph, its history.

Assets and edges from the CMDB graph (:class:`dharma.sinks.cmdb.Cmdb`); the history
from its change log in PostgreSQL (:func:`dharma.sinks.asset_changes.changes_of`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from dharma.api.queries import NAME_PATTERN, Name, Page, StoresDep, answer_503, paged
from dharma.sinks.asset_changes import ChangeRow, changes_of, create_table
from dharma.sinks.cmdb import Cmdb, UnknownAsset

__all__ = ["router"]

router = APIRouter(tags=["cmdb"], dependencies=[Depends(answer_503)])

AssetId = Annotated[str, Path(pattern=NAME_PATTERN)]
#: Most assets a blast radius answers with (the nearest).
MAX_NODES = 1000


@router.get("/cmdb/assets")
async def assets(
    page: Annotated[Page, Depends(paged(str))], store: StoresDep,
    asset_type: Annotated[str | None, Query(alias="type", pattern=NAME_PATTERN)] = None,
    team: Name = None,
    q: Annotated[str | None, Query(pattern=r"^[^\x00-\x1f\x7f]{1,100}$",
                                   description="Part of the id or name (any case).")] = None,
) -> dict[str, Any]:
    """Live assets by id (placeholders, named only by an edge, left out)."""
    rows = await Cmdb(store.graph()).assets_page(
        asset_type=asset_type, team=team, text=q, after=page.after[0] if page.after else None,
        limit=page.limit + 1)
    return page.result(rows, lambda a: (a["id"],))


@router.get("/cmdb/assets/{asset_id}")
async def asset(asset_id: AssetId, store: StoresDep) -> dict[str, Any]:
    """The asset as the graph holds it now (retired ones too, with ``valid_to``)."""
    try:
        return await Cmdb(store.graph()).asset(asset_id)
    except UnknownAsset as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/cmdb/assets/{asset_id}/blast-radius")
async def blast_radius(
    asset_id: AssetId, store: StoresDep,
    depth: Annotated[int, Query(ge=1, le=5, description="Hops followed.")] = 3,
) -> dict[str, Any]:
    """What fails with the asset: what depends on it through live ``DEPENDS_ON`` and
    ``RUNS_ON`` edges up to ``depth`` hops (the asset at depth 0), the edges between
    them (``source`` depends on ``target``); the nearest 1000 assets at most."""
    try:
        found = await Cmdb(store.graph()).blast_graph(asset_id, depth, MAX_NODES)
    except UnknownAsset as exc:
        raise HTTPException(404, str(exc)) from None
    return asdict(found)


def _change(row: ChangeRow) -> dict[str, Any]:
    return {"event_id": row.event_id, "ts": row.ts, "kind": row.kind, "action": row.action,
            "resource_id": row.resource_id, "attributes": row.attributes}


@router.get("/cmdb/assets/{asset_id}/history")
async def history(asset_id: AssetId, page: Annotated[Page, Depends(paged(int, str))],
                  store: StoresDep) -> dict[str, Any]:
    """The asset's changes (its own and its outgoing edges', and notes such as
    remediations), newest first."""
    after = (page.after[0], page.after[1]) if page.after else None
    async with store.postgres("asset_changes", create_table) as conn:
        rows = await changes_of(conn, asset_id, after=after, limit=page.limit + 1,
                                prepare=False)
    if not rows and after is None:
        try:
            await Cmdb(store.graph()).asset(asset_id)
        except UnknownAsset as exc:
            raise HTTPException(404, str(exc)) from None
    return page.result(rows, lambda r: (r.ts, r.event_id), _change)
