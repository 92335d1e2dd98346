"""Pure logic of the CMDB: ``asset`` and ``dependency`` events as changes, and the
graph state of each asset and edge as a function of its whole change history.

A state depends only on the *set* of changes of its key, never on the order they
arrived in or how often: changes are sorted by event time, ties broken by event id,
and the last one gives the attributes (last writer wins).  Lifetimes are kept as
spans ``[from, to, from, to, ...]`` (``OPEN`` while live), so a retired asset or a
removed edge is never deleted and "as it was at T" stays answerable.

>>> created = Change("e1", 1000, "asset", "db-1", "created", {"team": "data"})
>>> retired = Change("e2", 5000, "asset", "db-1", "retired", {"team": "data"})
>>> state = project([retired, created, retired])     # late, out of order, twice
>>> state.version.spans, state.version.live, state.version.changed_by
((1000, 5000), False, 'e2')
>>> state.version.alive_at(4999), state.version.alive_at(5000)
(True, False)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter

from dharma.streams.errors import ContractViolation
from dharma.streams.records import Name, checked_name

__all__ = ["ASSET_FIELDS", "OPEN", "RELATIONS", "AssetState", "Change", "EdgeState",
           "Version", "edge_key", "project", "project_histories", "to_change"]

#: The end of a span that has not ended.
OPEN = -1

#: What an asset node carries besides its id (the contract's asset attributes).
ASSET_FIELDS = ("asset_type", "name", "provider", "region", "team", "env",
                "instance_type", "hourly_cost")

#: Edge types, as the contract's ``Relation`` enum spells them (graph relationship types).
RELATIONS = ("DEPENDS_ON", "RUNS_ON", "CONNECTS_TO")

_OPENS = {"asset": {"created", "updated"}, "dependency": {"added"}}

Kind = Literal["asset", "dependency"]

_NAME: TypeAdapter[str] = TypeAdapter(Name)


def edge_key(source: str, relation: str, target: str) -> str:
    """The key of an edge's history (unambiguous whatever the ids contain)."""
    return json.dumps([source, relation, target])


@dataclass(frozen=True)
class Change:
    """One ``asset`` or ``dependency`` event, as the CMDB keeps it.

    ``attributes``: the asset's attributes (:data:`ASSET_FIELDS`), or the edge's
    ``target_id`` and ``relation``.
    """

    event_id: str
    ts: int
    kind: Kind
    resource_id: str
    action: str
    attributes: Mapping[str, Any]

    @property
    def key(self) -> str:
        """What the change is about: the asset's id, or the edge (:func:`edge_key`)."""
        if self.kind == "asset":
            return self.resource_id
        return edge_key(self.resource_id, self.attributes["relation"],
                        self.attributes["target_id"])

    @property
    def order(self) -> tuple[int, str]:
        """Last-writer-wins order: event time, then event id."""
        return self.ts, self.event_id


def to_change(raw: Mapping[str, Any], latest: int | None = None) -> Change | None:
    """The change a decoded ``infrastructure.events`` value makes to the CMDB (``None``
    for the other event types); :class:`ContractViolation` when its attributes are not
    the branch its type names, or it is timed after ``latest`` (ms): a change dated in
    the future would win every later one, so it is refused rather than believed."""
    kind = raw["type"]
    if kind not in _OPENS:
        return None
    if latest is not None and raw["ts"] > latest:
        raise ContractViolation(f"{kind} event {raw['event_id']} is dated {raw['ts'] - latest} "
                                "ms beyond the worker's clock and allowed skew")
    attrs = dict(raw["attributes"])
    expected = ("target_id", "relation") if kind == "dependency" else ASSET_FIELDS
    if (missing := [f for f in expected if f not in attrs]) or "action" not in attrs:
        raise ContractViolation(f"{kind} event {raw['event_id']} has attributes of another "
                                f"type (missing {', '.join(missing) or 'action'})")
    action = attrs.pop("action")
    cost = attrs.get("hourly_cost")
    if cost is not None and not (math.isfinite(cost) and cost >= 0):
        raise ContractViolation(f"hourly_cost must be a finite amount, not {cost!r}")
    if kind == "dependency" and attrs["relation"] not in RELATIONS:
        raise ContractViolation(f"unknown relation {attrs['relation']!r}")
    if kind == "dependency" and attrs["target_id"] == raw["resource_id"]:
        raise ContractViolation(f"{raw['resource_id']} cannot depend on itself")
    if kind == "dependency":
        checked_name(attrs["target_id"], "target_id")
    return Change(raw["event_id"], raw["ts"], kind, checked_name(raw["resource_id"], "resource_id"),
                  action, {f: attrs.get(f) for f in expected})


@dataclass(frozen=True)
class Version:
    """When an asset or edge lived, and the change its state comes from."""

    spans: tuple[int, ...]
    changed_at: int
    changed_by: str
    #: Distinct changes folded in: a store keeps the state of the longest history.
    changes: int

    @property
    def live(self) -> bool:
        return bool(self.spans) and self.spans[-1] == OPEN

    @property
    def valid_from(self) -> int | None:
        return self.spans[-2] if self.spans else None

    @property
    def valid_to(self) -> int | None:
        """End of the last span; for something that never lived, its last change."""
        if not self.spans:
            return self.changed_at
        return None if self.live else self.spans[-1]

    def alive_at(self, ts: int) -> bool:
        pairs = zip(self.spans[::2], self.spans[1::2], strict=True)
        return any(start <= ts and (end == OPEN or ts < end) for start, end in pairs)

    def row(self) -> dict[str, Any]:
        return {"spans": list(self.spans), "valid_from": self.valid_from,
                "valid_to": self.valid_to, "changed_at": self.changed_at,
                "changed_by": self.changed_by, "changes": self.changes}


@dataclass(frozen=True)
class AssetState:
    """An asset node: its attributes as the last change left them, and its lifetime."""

    resource_id: str
    attributes: Mapping[str, Any]
    version: Version

    def row(self) -> dict[str, Any]:
        """Parameters of the graph write."""
        status = "live" if self.version.live else "retired"
        return {"id": self.resource_id, "status": status,
                **{f: self.attributes.get(f) for f in ASSET_FIELDS}, **self.version.row()}


@dataclass(frozen=True)
class EdgeState:
    """A dependency edge ``source -[relation]-> target`` and its lifetime."""

    source: str
    relation: str
    target: str
    version: Version

    def row(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, **self.version.row()}


def _version(kind: Kind, history: list[Change]) -> Version:
    spans: list[int] = []
    for change in history:
        opens = change.action in _OPENS[kind]
        if opens and not (spans and spans[-1] == OPEN):
            spans += [change.ts, OPEN]
        elif not opens and spans and spans[-1] == OPEN:
            spans[-1] = change.ts
    last = history[-1]
    return Version(tuple(spans), last.ts, last.event_id, len(history))


def project(changes: Iterable[Change]) -> AssetState | EdgeState:
    """The state of one asset or edge after ``changes`` (all of one key, any order,
    duplicates allowed)."""
    history = sorted({c.event_id: c for c in changes}.values(), key=lambda c: c.order)
    if not history:
        raise ValueError("no changes to project")
    last = history[-1]
    version = _version(last.kind, history)
    if last.kind == "asset":
        return AssetState(last.resource_id, last.attributes, version)
    return EdgeState(last.resource_id, last.attributes["relation"],
                     last.attributes["target_id"], version)


def project_histories(
        histories: Mapping[str, Iterable[Change]]) -> tuple[list[AssetState], list[EdgeState]]:
    """The CMDB's batch step: the state of every key a batch touched, from each key's
    whole history (what is stored, this batch included), in key order."""
    assets: list[AssetState] = []
    edges: list[EdgeState] = []
    for key in sorted(histories):
        state = project(histories[key])
        if isinstance(state, AssetState):
            assets.append(state)
        else:
            edges.append(state)
    return assets, edges
