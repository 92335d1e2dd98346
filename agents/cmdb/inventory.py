"""A discovery tool's inventory (``dharma cmdb sync``): read and validated as a whole,
then turned into the ``infrastructure.events`` the CMDB applies like any other.

Pure: no store, no broker.  The whole file is checked before anything is sent, so a
bad row or a truncated file changes nothing; the error names the row and the field.
Event ids are derived from the source, the sync's tag and the key, so a sync sent
twice (a producer retry) is stored once.

>>> inv = parse_inventory('[{"resource_id": "db-1", "asset_type": "db", "name": "db-1",'
...     ' "provider": "aws", "region": "eu-west-1", "team": "data", "env": "prod"}]', "json")
>>> [e["attributes"]["action"] for e in inventory_events(inv, "scan", 1000, live=set())]
['created']
>>> parse_inventory("resource_id,asset_type\\ndb-1,db\\n", "csv")
Traceback (most recent call last):
...
dharma.agents.cmdb.inventory.InventoryError: asset 1 (db-1): name: Field required
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dharma.agents.cmdb.logic import ASSET_FIELDS, RELATIONS, edge_key
from dharma.streams.errors import DharmaError
from dharma.streams.records import Name, first_error

__all__ = ["DEFAULT_MAX_ROWS", "Inventory", "InventoryAsset", "InventoryDependency",
           "InventoryError", "inventory_events", "parse_inventory", "sync_event_id"]

#: Rows a file may hold: the whole file is validated (and kept) in memory.
DEFAULT_MAX_ROWS = 1_000_000

#: Namespace of the sync events' ids (uuid5 of source, tag and key).
_SYNC_NAMESPACE = uuid.UUID("6f0c6d4e-2c57-4a53-9a8e-2b6d8f0f1c13")

Format = Literal["json", "csv"]


class InventoryError(DharmaError):
    """The inventory cannot be synced (nothing was changed)."""


class InventoryAsset(BaseModel):
    """One asset as the discovery tool saw it (the contract's asset attributes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource_id: Name
    asset_type: Name
    name: Name
    provider: Name
    region: Name
    team: Name
    env: Name
    instance_type: Name | None = None
    hourly_cost: float | None = Field(None, ge=0, allow_inf_nan=False)

    @field_validator("instance_type", "hourly_cost", mode="before")
    @classmethod
    def _empty_is_unknown(cls, value: Any) -> Any:
        return None if value == "" else value  # an empty CSV cell


class InventoryDependency(BaseModel):
    """An edge the discovery tool saw: ``resource_id`` depends on ``target_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource_id: Name
    target_id: Name
    relation: Literal[RELATIONS]  # type: ignore[valid-type]  # the tuple's values, as a Literal

    @model_validator(mode="after")
    def _not_itself(self) -> InventoryDependency:
        if self.resource_id == self.target_id:
            raise ValueError(f"{self.resource_id} cannot depend on itself")
        return self


class Inventory(BaseModel):
    """A whole inventory: every asset once, and the dependencies seen."""

    assets: list[InventoryAsset]
    dependencies: list[InventoryDependency] = []


def _validate(model: type[BaseModel], rows: Iterable[Any], what: str) -> list[Any]:
    out = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise InventoryError(f"{what} {number}: an object is expected, not {row!r:.60}")
        if None in row:  # csv.DictReader's key for values beyond the header
            raise InventoryError(f"{what} {number}: more values than columns")
        try:
            out.append(model.model_validate(row))
        except ValidationError as exc:
            rid = str(row.get("resource_id"))[:80]
            raise InventoryError(f"{what} {number} ({rid}): {first_error(exc)}") from None
    return out


def _rows(text: str, fmt: Format) -> tuple[list[Any], list[Any]]:
    if fmt == "csv":
        try:
            return list(csv.DictReader(io.StringIO(text, newline=""))), []
        except csv.Error as exc:
            raise InventoryError(f"not a valid CSV file: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"not valid JSON (truncated?): {exc}") from None
    except RecursionError:
        raise InventoryError("not an inventory: JSON nested too deep") from None
    if isinstance(data, list):
        return data, []
    if isinstance(data, dict) and set(data) <= {"assets", "dependencies"} \
            and isinstance(data.get("assets"), list) \
            and isinstance(data.get("dependencies", []), list):
        return data["assets"], data.get("dependencies", [])
    raise InventoryError('expected a list of assets or {"assets": [...], "dependencies": [...]}')


def parse_inventory(text: str, fmt: Format, max_rows: int = DEFAULT_MAX_ROWS) -> Inventory:
    """The inventory in ``text`` (JSON or CSV), every row checked; :class:`InventoryError`
    naming the first bad row and field, an empty inventory, or a repeated asset."""
    assets, dependencies = _rows(text, fmt)
    if len(assets) + len(dependencies) > max_rows:
        raise InventoryError(f"{len(assets) + len(dependencies)} rows: more than {max_rows}")
    if not assets:
        raise InventoryError("no assets: a complete sync of nothing would mark every asset "
                             "of the source stale")
    inventory = Inventory(assets=_validate(InventoryAsset, assets, "asset"),
                          dependencies=_validate(InventoryDependency, dependencies,
                                                 "dependency"))
    first: dict[str, int] = {}
    for number, asset in enumerate(inventory.assets, start=1):
        if (seen := first.setdefault(asset.resource_id, number)) != number:
            raise InventoryError(f"asset {number} ({asset.resource_id}): repeats asset {seen}")
    return inventory


def sync_event_id(source: str, tag: int, key: str) -> str:
    """The id of the event a sync sends about ``key`` (the same for the same sync).

    >>> sync_event_id("scan", 1, "db-1") == sync_event_id("scan", 1, "db-1")
    True
    """
    return str(uuid.uuid5(_SYNC_NAMESPACE, json.dumps([source, tag, key])))


def inventory_events(inventory: Inventory, source: str, tag: int,
                     live: Collection[str]) -> list[dict[str, Any]]:
    """``infrastructure.events`` values for the inventory, dated ``tag``: each asset
    ``created`` unless ``live`` (ids with a live node) holds it, then ``updated``; each
    dependency ``added``."""
    events = []
    for asset in inventory.assets:
        action = "updated" if asset.resource_id in live else "created"
        attributes = {"action": action, **{f: getattr(asset, f) for f in ASSET_FIELDS}}
        events.append(_event(source, tag, "asset", asset.resource_id, asset.resource_id,
                             attributes))
    for dep in inventory.dependencies:
        key = edge_key(dep.resource_id, dep.relation, dep.target_id)
        attributes = {"target_id": dep.target_id, "relation": dep.relation, "action": "added"}
        events.append(_event(source, tag, "dependency", key, dep.resource_id, attributes))
    return events


def _event(source: str, tag: int, kind: str, key: str, resource_id: str,
           attributes: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": sync_event_id(source, tag, key), "ts": tag, "type": kind,
            "resource_id": resource_id, "attributes": attributes}
