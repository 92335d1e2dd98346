"""A discovery tool's inventory: read whole, checked whole, turned into contract events."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import fastavro
import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.cmdb.inventory import (
    InventoryError,
    inventory_events,
    parse_inventory,
    sync_event_id,
)
from dharma.agents.cmdb.logic import to_change
from dharma.cli.cmdb import parse_at
from dharma.cli.up import DEFAULT_TOPOLOGIES, NOT_IN_DEMO
from dharma.schemas import load_schema
from dharma.topologies import TOPOLOGIES

FIELDS = ["resource_id", "asset_type", "name", "provider", "region", "team", "env",
          "instance_type", "hourly_cost"]
CONTRACT = fastavro.parse_schema(load_schema("infrastructure.events-value"))
text = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp")), min_size=1,
               max_size=30)


def asset(resource_id: str, **extra: Any) -> dict[str, Any]:
    return {"resource_id": resource_id, "asset_type": "db", "name": resource_id,
            "provider": "aws", "region": "eu-west-1", "team": "data", "env": "prod", **extra}


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return out.getvalue()


assets = st.lists(st.builds(
    asset, text, instance_type=st.none() | text,
    hourly_cost=st.none() | st.floats(0, 1e6, allow_nan=False)),
    min_size=1, max_size=8, unique_by=lambda a: a["resource_id"])


@given(assets)
def test_json_and_csv_give_the_same_inventory(rows: list[dict[str, Any]]) -> None:
    from_json = parse_inventory(json.dumps(rows), "json")
    assert from_json == parse_inventory(as_csv(rows), "csv")
    assert [a.model_dump() for a in from_json.assets] == rows


@given(assets, st.integers(0, 2**41), text)
def test_events_follow_the_contract_and_the_cmdb_reads_them(
        rows: list[dict[str, Any]], tag: int, source: str) -> None:
    inventory = parse_inventory(json.dumps({"assets": rows, "dependencies": [
        {"resource_id": rows[0]["resource_id"], "target_id": "elsewhere",
         "relation": "RUNS_ON"}]}), "json")
    live = {rows[0]["resource_id"]}
    events = inventory_events(inventory, source, tag, live)
    for event in events:
        fastavro.schemaless_writer(io.BytesIO(), CONTRACT, event)  # raises off contract
        change = to_change(event)
        assert change is not None and change.ts == tag
    assert [e["attributes"]["action"] for e in events] == (
        ["updated"] + ["created"] * (len(rows) - 1) + ["added"])
    assert len({e["event_id"] for e in events}) == len(events)
    assert events == inventory_events(inventory, source, tag, live)  # ids derived, not drawn


def test_event_ids_differ_by_source_and_tag() -> None:
    ids = {sync_event_id(s, t, "db-1") for s in ("a", "b") for t in (1, 2)}
    assert len(ids) == 4


@pytest.mark.parametrize(("text_in", "fmt", "message"), [
    (json.dumps([asset("a"), asset("b", hourly_cost="lots")]), "json",
     "asset 2 (b): hourly_cost"),
    (json.dumps([asset("a"), asset("b", hourly_cost=-1)]), "json", "asset 2 (b): hourly_cost"),
    (json.dumps([asset("a"), {**asset("b"), "team": ""}]), "json", "asset 2 (b): team"),
    (json.dumps([asset("a"), asset("a")]), "json", "asset 2 (a): repeats asset 1"),
    (json.dumps([asset("a"), asset("b\nc")]), "json", "resource_id: contains a control"),
    (json.dumps([asset("a"), asset("b\u00adc")]), "json", "resource_id: contains a control"),
    (json.dumps([asset("a", owner="x")]), "json", "owner: Extra inputs are not permitted"),
    (json.dumps([asset("a"), asset("b")])[:-20], "json", "not valid JSON"),
    (json.dumps({"assets": [asset("a")], "dependencies": [
        {"resource_id": "a", "target_id": "a", "relation": "DEPENDS_ON"}]}), "json",
     "cannot depend on itself"),
    (json.dumps({"assets": [asset("a")], "dependencies": [
        {"resource_id": "a", "target_id": "b", "relation": "OWNS"}]}), "json",
     "dependency 1 (a): relation"),
    (json.dumps({"things": []}), "json", "expected a list of assets"),
    ("[" * 100_000 + "]" * 100_000, "json", "nested too deep"),
    (as_csv([asset("a", name="x" * 200_000)]), "csv", "not a valid CSV file"),
    ("[]", "json", "no assets"),
    (as_csv([asset("a")]) + "b,db,b,aws\n", "csv", "asset 2 (b): region"),
    (as_csv([asset("a")]) + "b,db,b,aws,r,t,e,,,extra\n", "csv", "more values than columns"),
])
def test_a_bad_file_is_refused_naming_the_row_and_field(text_in: str, fmt: Any,
                                                        message: str) -> None:
    with pytest.raises(InventoryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_inventory(text_in, fmt)


def test_a_hostile_id_is_a_plain_value_and_size_is_bounded() -> None:
    hostile = "x}) DETACH DELETE n //"
    (event,) = inventory_events(parse_inventory(as_csv([asset(hostile)]), "csv"), "s", 1, ())
    assert event["resource_id"] == hostile and event["attributes"]["name"] == hostile
    with pytest.raises(InventoryError, match="more than 2"):
        parse_inventory(json.dumps([asset(str(i)) for i in range(3)]), "json", max_rows=2)
    with pytest.raises(InventoryError, match="resource_id"):
        parse_inventory(json.dumps([asset("a" * 257)]), "json")


def test_at_takes_epoch_ms_or_iso_with_a_zone() -> None:
    assert parse_at("0") == 0 and parse_at(None) is None
    assert parse_at("2026-12-01T18:00:00.5+00:00") == 1_796_148_000_500
    for bad in ("2026-12-01T18:00:00", "yesterday", "-5"):
        with pytest.raises(typer.BadParameter):
            parse_at(bad)


def test_dharma_up_runs_every_topology() -> None:
    assert set(DEFAULT_TOPOLOGIES) | set(NOT_IN_DEMO) == set(TOPOLOGIES)
