"""FOCUS lines: each bad field gives a clear reason naming its column; valid lines become
``billing.focus`` records whose ids make a re-import idempotent; a worker applies the
same rules to what it reads and refuses forged ids."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.cost.focus import CHARGE_CATEGORIES, FocusRow, billed_row, line_id
from dharma.agents.cost.focus_csv import REQUIRED_COLUMNS, FocusFileError, parse_focus_csv
from dharma.schemas import load_schema
from dharma.sinks.bills import BilledRow
from dharma.streams.errors import ContractViolation
from dharma.streams.writer_schemas import strip_logical_types

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "focus_sample.csv"
CONTRACT = load_schema("billing.focus-value")
#: What a Confluent serializer writes with (logical types applied) and what the worker's
#: codec reads with (logical types stripped: decimals arrive as bytes).
WRITER = fastavro.parse_schema(CONTRACT)
READER = fastavro.parse_schema(strip_logical_types(CONTRACT))

USAGE = {
    "BilledCost": "0.9984", "BillingAccountId": "123456789012", "BillingCurrency": "USD",
    "ChargeCategory": "Usage", "ChargeClass": "", "ChargeDescription": "t3.medium",
    "ChargePeriodEnd": "2025-03-02T00:00:00Z", "ChargePeriodStart": "2025-03-01T00:00:00Z",
    "EffectiveCost": "0.9984", "ListCost": "0.9984", "PricingQuantity": "24",
    "PricingUnit": "Hours", "ProviderName": "AWS", "RegionId": "us-east-1",
    "ResourceId": "web-01", "ResourceName": "web 1", "ResourceType": "Virtual Machine",
    "ServiceName": "Amazon Elastic Compute Cloud", "Tags": '{"team": "web"}',
}
TAX = {**USAGE, "ChargeCategory": "Tax", "PricingQuantity": "", "PricingUnit": "",
       "ResourceId": "", "ResourceName": "", "ResourceType": ""}


def csv_text(*rows: dict[str, str], header: list[str] | None = None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def reasons_of(*rows: dict[str, str]) -> list[str]:
    parsed = parse_focus_csv(csv_text(*rows))
    assert not parsed.records
    ((_, why),) = parsed.invalid
    return why


def through_the_wire(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` serialised as a producer does and read back as the worker does."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, WRITER, record)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, READER, None)  # type: ignore[return-value]  # a record


def test_the_rules_and_the_contract_name_the_same_fields_and_categories() -> None:
    fields = {f["name"]: f for f in CONTRACT["fields"]}
    assert list(fields) == ["x_line_id", "x_occurrence", *FocusRow.model_fields]
    assert fields["ChargeCategory"]["type"]["symbols"] == list(CHARGE_CATEGORIES)
    assert list(BilledRow._fields) == list(fields)


def test_the_sample_export_is_valid_and_keeps_its_tags() -> None:
    parsed = parse_focus_csv(SAMPLE.read_text(encoding="utf-8"))
    assert parsed.invalid == [] and parsed.notes == []
    records = [record for _, record in parsed.records]
    assert {r["ChargeCategory"] for r in records} == {"Usage", "Tax", "Credit"}
    assert len({r["ResourceId"] for r in records}) == 6  # five resources and None
    first = records[0]
    assert first["Tags"] == {"team": "web", "env": "prod", "backup": "true",
                             "x_CostCenter": "cc-100"}
    assert first["BilledCost"] == Decimal("0.9984")
    credit = next(r for r in records if r["ChargeCategory"] == "Credit")
    assert credit["BilledCost"] == Decimal("-5") and credit["PricingUnit"] is None
    keys = {key for key, r in parsed.records if r["ResourceId"] is None}
    assert keys == {"123456789012"}  # no resource: keyed by the billing account
    assert len({r["x_line_id"] for r in records}) == len(records)


@pytest.mark.parametrize(("change", "reason"), [
    ({"BilledCost": "$0.99"}, "BilledCost: '$0.99' is not a FOCUS number"),
    ({"BilledCost": "1,000.00"}, "BilledCost: '1,000.00' is not a FOCUS number"),
    ({"ListCost": "+1"}, "ListCost: '+1' is not a FOCUS number"),
    ({"EffectiveCost": "NaN"}, "EffectiveCost: 'NaN' is not a FOCUS number"),
    ({"BilledCost": ""}, "BilledCost: must not be null (empty)"),
    ({"BilledCost": "1E+400"}, "BilledCost: '1E+400' is not a FOCUS number"),
    ({"BilledCost": "1E400"}, "BilledCost: 1E+400 is beyond 20 integer digits"),
    ({"ChargeCategory": "usage"}, "ChargeCategory: Input should be 'Usage', 'Purchase', "
                                  "'Tax', 'Credit' or 'Adjustment'"),
    ({"ChargeCategory": ""}, "ChargeCategory: must not be null (empty)"),
    ({"ChargeClass": "Refund"}, "ChargeClass: Input should be 'Correction'"),
    ({"ChargePeriodStart": "2025-03-01T00:00:00"}, "ChargePeriodStart: '2025-03-01T00:00:00' "
                                                   "is not in UTC (FOCUS date/times end in Z)"),
    ({"ChargePeriodStart": "2025-03-01T01:00:00+01:00"}, "is not in UTC"),
    ({"ChargePeriodEnd": "tomorrow"}, "ChargePeriodEnd: 'tomorrow' is not ISO 8601"),
    ({"ChargePeriodEnd": "2025-03-01T00:00:00Z"}, "ChargePeriodEnd (exclusive) must be after "
                                                  "ChargePeriodStart"),
    ({"BillingCurrency": "usd"}, "BillingCurrency: 'usd' is not an ISO 4217 currency code"),
    ({"BillingCurrency": "US$"}, "BillingCurrency: 'US$' is not an ISO 4217 currency code"),
    ({"PricingUnit": ""}, "PricingUnit must not be null on a Usage line that is not a "
                          "correction"),
    ({"PricingQuantity": "-2"}, "PricingQuantity may be negative on a correction only"),
    ({"ResourceId": ""}, "ResourceType without a ResourceId"),
    ({"ServiceName": ""}, "ServiceName: must not be null (empty)"),
    ({"BillingAccountId": ""}, "BillingAccountId: must not be null (empty)"),
    ({"ProviderName": ""}, "ProviderName: must not be null (empty)"),
    ({"Tags": "team=web"}, "Tags: not a JSON object of tags"),
    ({"Tags": '["web"]'}, "Tags: not a JSON object of tags"),
    ({"Tags": '{"team": {"name": "web"}}'}, "Tags: tag 'team': a value must be a string"),
    ({"Tags": '{"team": "web", "team": "ops"}'}, "a tag key appears twice"),
    ({"ServiceName": "EC2\x00"}, "a NUL character"),
])
def test_each_bad_field_gives_a_clear_reason(change: dict[str, str], reason: str) -> None:
    why = reasons_of({**USAGE, **change})
    assert any(reason in r for r in why), why


def test_a_tax_line_has_no_pricing_unit_or_quantity() -> None:
    assert parse_focus_csv(csv_text(TAX)).invalid == []
    assert reasons_of({**TAX, "PricingUnit": "Hours"}) == [
        "PricingUnit must be null on a Tax line"]
    assert reasons_of({**TAX, "PricingQuantity": "3"}) == [
        "PricingQuantity must be null on a Tax line"]


def test_a_correction_may_go_without_a_pricing_unit_and_be_negative() -> None:
    correction = {**USAGE, "ChargeClass": "Correction", "PricingUnit": "",
                  "PricingQuantity": "-3", "BilledCost": "-0.12"}
    assert parse_focus_csv(csv_text(correction)).invalid == []


def test_invalid_lines_are_numbered_as_in_the_file_and_the_rest_kept() -> None:
    multi = {**USAGE, "ChargeDescription": "two\nlines"}   # a quoted cell spans lines 2-3
    text = csv_text(multi, {**USAGE, "BilledCost": "x"}, USAGE, {**USAGE, "ListCost": "-"})
    parsed = parse_focus_csv(text + "1,2,3\n")
    assert [line for line, _ in parsed.invalid] == [4, 6, 7]
    assert parsed.invalid[2][1] == ["3 cells, the header has 19"]
    assert len(parsed.records) == 2


def test_a_header_without_focus_columns_refuses_the_file() -> None:
    for missing in REQUIRED_COLUMNS:
        row = {k: v for k, v in USAGE.items() if k != missing}
        with pytest.raises(FocusFileError, match=f"not a FOCUS export: no {missing} column"):
            parse_focus_csv(csv_text(row))
    with pytest.raises(FocusFileError, match="empty file"):
        parse_focus_csv("")
    with pytest.raises(FocusFileError, match="columns named twice: Tags"):
        parse_focus_csv(",".join([*USAGE, "Tags"]) + "\n")


def test_a_file_that_stops_being_csv_is_refused_with_its_line() -> None:
    huge = {**USAGE, "ChargeDescription": "x" * (csv.field_size_limit() + 1)}
    with pytest.raises(FocusFileError, match=r"line 3: not CSV \(field larger than"):
        parse_focus_csv(csv_text(USAGE, huge))


def test_extra_columns_are_tags_when_x_prefixed_else_ignored_with_a_note() -> None:
    row = {**USAGE, "x_CostCenter": "cc-1", "x_Empty": "", "SkuId": "SKU-1", "Colour": "red"}
    parsed = parse_focus_csv(csv_text(row))
    ((_, record),) = parsed.records
    assert record["Tags"] == {"team": "web", "x_CostCenter": "cc-1"}
    assert parsed.notes == ["columns ignored (neither FOCUS nor x_-prefixed): Colour"]
    clash = {**USAGE, "Tags": '{"x_CostCenter": "cc-2"}', "x_CostCenter": "cc-1"}
    assert reasons_of(clash) == ["x_CostCenter: both a column and a tag"]


def test_ids_are_stable_across_imports_and_identical_lines_stay_two() -> None:
    text = csv_text(USAGE, USAGE, TAX)
    first = [r["x_line_id"] for _, r in parse_focus_csv(text).records]
    assert first == [r["x_line_id"] for _, r in parse_focus_csv(text).records]
    assert len(set(first)) == 3
    fixed = csv_text({**USAGE, "BilledCost": "bad"}, USAGE, USAGE, TAX)  # a bad line fixed later
    assert [r["x_line_id"] for _, r in parse_focus_csv(fixed).records] == first
    reformatted = {**USAGE, "BilledCost": "99.84E-2", "PricingQuantity": "24.000"}
    assert parse_focus_csv(csv_text(reformatted)).records[0][1]["x_line_id"] == first[0]


@given(st.decimals(min_value=Decimal("-1e19"), max_value=Decimal("1e19"), places=18,
                   allow_nan=False, allow_infinity=False))
def test_any_cost_survives_the_wire_with_its_id(cost: Decimal) -> None:
    text = csv_text({**USAGE, "BilledCost": str(cost), "EffectiveCost": f"{cost:f}"})
    ((_, record),) = parse_focus_csv(text).records
    row = billed_row(through_the_wire(record))
    assert row.BilledCost == row.EffectiveCost == cost
    assert row.x_line_id == record["x_line_id"] == line_id(record)


def test_the_sample_survives_the_wire() -> None:
    for _, record in parse_focus_csv(SAMPLE.read_text(encoding="utf-8")).records:
        assert billed_row(through_the_wire(record))._asdict() == record


@pytest.mark.parametrize(("forge", "reason"), [
    ({"x_line_id": "0" * 32}, "is not the hash of the line's content"),
    ({"BilledCost": Decimal("1000")}, "is not the hash of the line's content"),
    ({"x_occurrence": 0}, "lines count from 1"),
    ({"ChargePeriodEnd": 2**62}, "is not a date/time from 1970 to 9999"),
    ({"ChargePeriodEnd": 0}, "must be after ChargePeriodStart"),
    ({"BillingCurrency": "usd"}, "not an ISO 4217 currency code"),
    ({"ChargeCategory": "Tax"}, "must be null on a Tax line"),
    ({"ResourceName": "a\x00b"}, "NUL character"),
])
def test_a_forged_record_is_refused_by_the_worker(forge: dict[str, Any], reason: str) -> None:
    ((_, record),) = parse_focus_csv(csv_text(USAGE)).records
    with pytest.raises(ContractViolation, match=reason):
        billed_row(through_the_wire({**record, **forge}))


def test_an_oversized_decimal_is_refused_by_the_worker() -> None:
    ((_, record),) = parse_focus_csv(csv_text(USAGE)).records
    raw = {**through_the_wire(record), "ListCost": b"\x7f" * 40}
    with pytest.raises(ContractViolation, match="a decimal of 40 bytes"):
        billed_row(raw)
