"""The questions asked of the CMDB graph (:mod:`dharma.sinks.graph`): blast radius,
dependency paths, an asset, counts.  The CLI and other capabilities call these.

Every question takes ``at`` (ms): without it, only what is live now counts (no
``valid_to``); with it, what was alive at that instant (a span of ``spans`` holding
it).  Traversals walk one level per query (``UNWIND $frontier``), breadth first, so
their cost follows the edges they meet, never the number of paths, and each asset
is reported once, at its shortest distance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from dharma.sinks.graph import RELATIONS, Graph
from dharma.streams.errors import DharmaError

__all__ = ["BlastGraph", "BlastRadius", "Cmdb", "Hop", "Impact", "UnknownAsset"]

#: The edges along which a failure travels to what depends on it.
IMPACT_RELATIONS = ("DEPENDS_ON", "RUNS_ON")


#: Deepest a path search goes.
MAX_PATH_DEPTH = 32


class UnknownAsset(DharmaError):
    """The CMDB holds no asset of that id."""


def _alive(var: str, at: int | None, node: bool = False) -> str:
    """Cypher: ``var`` (a node or an edge) is live now, or was alive at ``$at``.  A
    placeholder (an asset only edges name yet) counts as alive."""
    if at is None:
        return f"{var}.valid_to IS NULL"
    spans = f"coalesce({var}.spans, [])"
    lived = (f"any(i IN range(0, size({spans}) - 2, 2) WHERE {spans}[i] <= $at "
             f"AND ({spans}[i + 1] < 0 OR $at < {spans}[i + 1]))")
    return f"(coalesce({var}.placeholder, false) OR {lived})" if node else lived


def _frontier(var: str) -> str:
    """Cypher: bind ``var`` to each asset of ``$frontier`` through the index on ``Asset.id``.

    ``WITH`` keeps FalkorDB's planner from starting at the far end of the next
    ``MATCH`` (a scan of every asset) when its ``WHERE`` filters that end's node.
    """
    return f"UNWIND $frontier AS fid MATCH ({var}:Asset {{id: fid}}) WITH {var} "


def impact_level(at: int | None) -> str:
    """Cypher of one level of a blast radius: the assets that depend on ``$frontier``'s
    (live, or alive at ``$at``), in one record (one a query, not one an asset)."""
    return (f"{_frontier('t')}MATCH (t)<-[r:{'|'.join(IMPACT_RELATIONS)}]-(d:Asset) "
            f"WHERE {_alive('r', at)} AND {_alive('d', at, node=True)} "
            "RETURN collect(DISTINCT d.id) AS ids")


@dataclass(frozen=True)
class Impact:
    id: str
    depth: int


@dataclass(frozen=True)
class BlastRadius:
    """Everything that transitively depends on ``resource_id``, nearest first."""

    resource_id: str
    impacted: list[Impact] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BlastGraph:
    """A blast radius drawn as a graph: its assets (``id``, ``type``, ``name``, ``team``,
    ``depth``; the root at depth 0) and the live dependency edges between them
    (``source`` depends on ``target``); ``truncated`` when the nearest ``max_nodes``
    assets are not all of it."""

    root: str
    nodes: list[dict[str, Any]]
    edges: list[dict[str, str]]
    truncated: bool = False


@dataclass(frozen=True)
class Hop:
    """``source`` depends on ``target`` through ``relation``."""

    source: str
    relation: str
    target: str


class Cmdb:
    """Read-only questions over the CMDB graph."""

    name = "graph.cmdb (read)"

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    async def asset(self, resource_id: str) -> dict[str, Any]:
        """The asset node's properties; :class:`UnknownAsset` when there is none."""
        rows = await self.graph.query(
            "MATCH (a:Asset {id: $id}) RETURN properties(a) AS asset", id=resource_id)
        if not rows:
            raise UnknownAsset(f"no asset {resource_id!r} in the CMDB")
        return dict(rows[0]["asset"])

    async def blast_radius(self, resource_id: str, depth: int | None = None,
                           at: int | None = None) -> BlastRadius:
        """What depends on ``resource_id`` through ``DEPENDS_ON``/``RUNS_ON`` edges, up
        to ``depth`` hops (all when ``None``), each at its shortest distance."""
        await self.asset(resource_id)
        return BlastRadius(resource_id, await self._walk(impact_level(at), resource_id,
                                                         depth, at))

    async def blast_graph(self, resource_id: str, depth: int, max_nodes: int) -> BlastGraph:
        """The live blast radius of ``resource_id`` up to ``depth`` hops with the edges
        along which it spreads, at most ``max_nodes`` assets (nearest first)."""
        radius = await self.blast_radius(resource_id, depth)
        depths = {resource_id: 0, **{i.id: i.depth for i in radius.impacted}}
        ids = list(depths)[:max_nodes]
        nodes = await self.graph.query(
            "UNWIND $ids AS i MATCH (a:Asset {id: i}) RETURN a.id AS id, a.asset_type AS "
            "type, a.name AS name, a.team AS team", ids=ids)
        edges = await self.graph.query(
            f"{_frontier('s')}MATCH (s)-[r:{'|'.join(IMPACT_RELATIONS)}]->(t:Asset) "
            "WHERE r.valid_to IS NULL AND t.id IN $frontier "
            "RETURN s.id AS source, t.id AS target, type(r) AS type", frontier=ids)
        by_id = {n["id"]: n for n in nodes}
        return BlastGraph(
            resource_id, [{**by_id[i], "depth": depths[i]} for i in ids if i in by_id],
            sorted(edges, key=lambda e: (e["source"], e["target"], e["type"])),
            truncated=len(depths) > len(ids))

    async def assets_page(self, *, asset_type: str | None = None, team: str | None = None,
                          text: str | None = None, after: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
        """Live assets (no placeholders) by id after ``after``, of ``asset_type`` and
        ``team``, whose id or name holds ``text`` (any case)."""
        rows = await self.graph.query(
            "MATCH (a:Asset) WHERE NOT coalesce(a.placeholder, false) AND a.valid_to IS NULL "
            "AND ($type IS NULL OR a.asset_type = $type) AND ($team IS NULL OR a.team = $team) "
            "AND ($text IS NULL OR toLower(a.id) CONTAINS $text OR "
            "toLower(coalesce(a.name, '')) CONTAINS $text) AND ($after IS NULL OR a.id > $after) "
            "RETURN properties(a) AS asset ORDER BY a.id LIMIT $limit",
            type=asset_type, team=team, text=None if text is None else text.lower(),
            after=after, limit=limit)
        return [dict(r["asset"]) for r in rows]

    async def dependencies(self, resource_id: str, depth: int | None = None,
                           at: int | None = None) -> list[Impact]:
        """What ``resource_id`` depends on through ``DEPENDS_ON``/``RUNS_ON`` edges, up to
        ``depth`` hops, nearest first (the other direction of :meth:`blast_radius`); empty
        for an asset the CMDB does not hold."""
        query = (f"{_frontier('d')}MATCH (d)-[r:{'|'.join(IMPACT_RELATIONS)}]->(t:Asset) "
                 f"WHERE {_alive('r', at)} AND {_alive('t', at, node=True)} "
                 "RETURN collect(DISTINCT t.id) AS ids")
        return await self._walk(query, resource_id, depth, at)

    async def _walk(self, level_query: str, resource_id: str, depth: int | None,
                    at: int | None) -> list[Impact]:
        """Breadth first from ``resource_id``, one ``level_query`` a level (it returns the
        next level's ``ids`` from ``$frontier``), each asset at its shortest distance."""
        seen, frontier, found = {resource_id}, [resource_id], []
        level = 0
        while frontier and (depth is None or level < depth):
            level += 1
            rows = await self.graph.query(level_query, frontier=frontier, at=at)
            frontier = sorted({i for r in rows for i in r["ids"]} - seen)
            seen.update(frontier)
            found += [Impact(i, level) for i in frontier]
        return found

    async def group(self, resource_id: str, at: int | None = None) -> tuple[str, list[str]]:
        """``resource_id``'s group, the assets of its type and team (live, or alive at
        ``at``), as ``("type/team", ids)``; :class:`UnknownAsset` when there is none."""
        asset = await self.asset(resource_id)
        rows = await self.graph.query(
            "MATCH (a:Asset) WHERE a.asset_type = $type AND a.team = $team AND "
            f"NOT coalesce(a.placeholder, false) AND {_alive('a', at)} "
            "RETURN collect(a.id) AS ids", type=asset.get("asset_type"), team=asset.get("team"),
            at=at)
        ids = sorted(set(rows[0]["ids"]) | {resource_id}) if rows else [resource_id]
        return f"{asset.get('asset_type')}/{asset.get('team')}", ids

    async def path(self, source: str, target: str, at: int | None = None) -> list[Hop] | None:
        """The shortest chain of dependency edges from ``source`` to ``target`` (what
        ``source`` reaches by depending), or ``None`` when there is none."""
        await self.asset(source)
        await self.asset(target)
        query = (
            f"{_frontier('s')}"
            f"MATCH (s)-[r:{'|'.join(RELATIONS)}]->(t:Asset) "
            f"WHERE {_alive('r', at)} AND {_alive('t', at, node=True)} "
            "RETURN s.id AS source, type(r) AS relation, t.id AS target")
        came_from: dict[str, Hop] = {}
        frontier = [source]
        for _ in range(MAX_PATH_DEPTH):
            if target in came_from or source == target or not frontier:
                break
            rows = await self.graph.query(query, frontier=frontier, at=at)
            frontier = []
            for row in sorted(rows, key=lambda r: (r["source"], r["relation"], r["target"])):
                if row["target"] != source and row["target"] not in came_from:
                    came_from[row["target"]] = Hop(row["source"], row["relation"], row["target"])
                    frontier.append(row["target"])
        if source == target:
            return []
        if target not in came_from:
            return None
        hops = [came_from[target]]
        while hops[-1].source != source:
            hops.append(came_from[hops[-1].source])
        return hops[::-1]

    async def stats(self, at: int | None = None) -> dict[str, Any]:
        """Assets by type, team and env; orphans (no edge either way); placeholders
        (named by an edge, never described); stale (not seen by their source's last
        complete sync); retired."""
        alive = _alive("a", at)
        assets = await self.graph.query(
            f"MATCH (a:Asset) WHERE NOT coalesce(a.placeholder, false) AND {alive} "
            "RETURN a.asset_type AS asset_type, a.team AS team, a.env AS env", at=at)
        orphans = await self.graph.query(
            f"MATCH (a:Asset) WHERE NOT coalesce(a.placeholder, false) AND {alive} "
            f"OPTIONAL MATCH (a)-[r]-(:Asset) WHERE {_alive('r', at)} "
            "WITH a, count(r) AS edges WHERE edges = 0 RETURN a.id AS id ORDER BY id", at=at)
        totals = await self.graph.query(
            "MATCH (a:Asset) RETURN sum(CASE WHEN a.stale THEN 1 ELSE 0 END) AS stale, "
            "sum(CASE WHEN a.status = 'retired' THEN 1 ELSE 0 END) AS retired")
        placeholders = await self.graph.query(
            "MATCH (a:Asset) WHERE a.placeholder RETURN a.id AS id ORDER BY id")

        def count(field_name: str) -> dict[str, int]:
            return dict(sorted(Counter(str(a[field_name]) for a in assets).items()))

        return {"assets": len(assets), "by_type": count("asset_type"),
                "by_team": count("team"), "by_env": count("env"),
                "orphans": [r["id"] for r in orphans],
                "placeholders": [r["id"] for r in placeholders],
                "stale": totals[0]["stale"] or 0, "retired": totals[0]["retired"] or 0}

    async def stale_count(self) -> int:
        """Assets their source's last complete sync did not see."""
        rows = await self.graph.query("MATCH (a:Asset) WHERE a.stale RETURN count(a) AS n")
        return int(rows[0]["n"])
