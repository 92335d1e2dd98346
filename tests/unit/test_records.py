"""``validate_metric``: the checks Avro cannot express, each with a readable reason."""

from __future__ import annotations

import io
import math
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dharma.schemas import load_schema
from dharma.streams.codec import strip_logical_types
from dharma.streams.errors import ContractViolation, DharmaError, RejectedEvent
from dharma.streams.records import MAX_NAME, MIN_TS_MS, MetricSample, dead_letter, validate_metric

NOW = 1_700_000_000_000
SKEW = 300_000
GOOD: dict[str, Any] = {
    "source": "web-server-01", "metric": "memory_utilization", "value": 71.5,
    "ts": NOW - 1_000, "labels": {"env": "prod"}, "unit": "percent",
}
CONTRACT = fastavro.parse_schema(strip_logical_types(load_schema("metrics.raw-value")))


def reason(**changes: Any) -> str:
    with pytest.raises(ContractViolation) as info:
        validate_metric({**GOOD, **changes}, NOW, SKEW)
    assert info.value.error_kind == "contract_violation"
    return info.value.reason


def test_accepts_a_good_sample() -> None:
    sample = validate_metric(GOOD, NOW, SKEW)
    assert sample == MetricSample(**GOOD)
    assert sample.series == "web-server-01|memory_utilization"


def test_minimal_sample_gets_contract_defaults() -> None:
    sample = validate_metric({"source": "a", "metric": "b", "value": 0.0, "ts": NOW}, NOW, SKEW)
    assert sample.labels == {} and sample.unit is None


def test_int_value_is_a_number() -> None:
    assert validate_metric({**GOOD, "value": 3}, NOW, SKEW).value == 3.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_rejects_non_finite_values(bad: float) -> None:
    text = reason(value=bad)
    assert text.startswith("value:") and "not finite" in text


@pytest.mark.parametrize("field", ["source", "metric"])
def test_rejects_empty_names(field: str) -> None:
    assert reason(**{field: ""}).startswith(f"{field}:")


@pytest.mark.parametrize("field", ["source", "metric"])
def test_rejects_over_long_names(field: str) -> None:
    assert validate_metric({**GOOD, field: "x" * MAX_NAME}, NOW, SKEW)
    text = reason(**{field: "x" * (MAX_NAME + 1)})
    assert text.startswith(f"{field}:") and str(MAX_NAME) in text


def test_rejects_timestamps_before_2000() -> None:
    assert validate_metric({**GOOD, "ts": MIN_TS_MS}, NOW, SKEW)
    text = reason(ts=MIN_TS_MS - 1)
    assert text.startswith("ts:") and str(MIN_TS_MS) in text


def test_rejects_timestamps_beyond_the_future_skew() -> None:
    assert validate_metric({**GOOD, "ts": NOW + SKEW}, NOW, SKEW)
    text = reason(ts=NOW + SKEW + 60_000)
    assert text.startswith("ts:") and "future" in text and "300s" in text


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"value": "1.5"}, "value"),
        ({"value": True}, "value"),
        ({"value": None}, "value"),
        ({"ts": "1700000000000"}, "ts"),
        ({"ts": 1.7e12}, "ts"),
        ({"source": 17}, "source"),
        ({"metric": None}, "metric"),
        ({"labels": {"env": 1}}, "labels.env"),
        ({"labels": ["env"]}, "labels"),
        ({"unit": 5}, "unit"),
        ({"host": "extra"}, "host"),
    ],
)
def test_rejects_wrong_types_naming_the_field(changes: dict[str, Any], field: str) -> None:
    assert reason(**changes).startswith(f"{field}:")


def test_rejects_a_missing_field() -> None:
    raw = {k: v for k, v in GOOD.items() if k != "metric"}
    with pytest.raises(ContractViolation, match=r"^contract_violation: metric: Field required"):
        validate_metric(raw, NOW, SKEW)


def test_contract_violation_is_a_rejected_dharma_error() -> None:
    err = ContractViolation("value: not finite")
    assert isinstance(err, RejectedEvent) and isinstance(err, DharmaError)
    assert str(err) == "contract_violation: value: not finite"


def test_dead_letter_record_fits_the_contract() -> None:
    record = dead_letter(topic="metrics.raw", partition=3, offset=42, error_kind="undecodable",
                         reason="x" * 5000, key=b"k", value=b"\x00\x01", ts=NOW)
    assert len(record["reason"]) == 2000
    assert record["original_value"] == b"\x00\x01"
    schema = fastavro.parse_schema(strip_logical_types(load_schema("dead-letter-value")))
    assert fastavro.validation.validate(record, schema)
    assert dead_letter(topic="t", partition=0, offset=0, error_kind="unknown_schema",
                       reason="r", key=None, value=None)["ts"] > NOW


#: Names as the contract allows them: any UTF-8 text without control, format or line
#: separator characters.
printable = st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Zl", "Zp"))
names = st.text(printable, min_size=1, max_size=MAX_NAME)


@given(
    source=names, metric=names,
    value=st.floats(allow_nan=False, allow_infinity=False),
    ts=st.integers(MIN_TS_MS, NOW + SKEW),
    labels=st.dictionaries(st.text(printable, max_size=10),
                           st.text(st.characters(codec="utf-8", exclude_characters="\x00"),
                                   max_size=10), max_size=5),
    unit=st.none() | st.text(printable, max_size=64),
)
def test_any_sane_sample_is_accepted_and_round_trips(
    source: str, metric: str, value: float, ts: int, labels: dict[str, str], unit: str | None
) -> None:
    raw = {"source": source, "metric": metric, "value": value, "ts": ts, "labels": labels,
           "unit": unit}
    sample = validate_metric(raw, NOW, SKEW)
    assert sample.model_dump() == raw
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, CONTRACT, sample.model_dump())
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, CONTRACT)
    assert isinstance(decoded, dict)
    assert validate_metric(decoded, NOW, SKEW) == sample


INVISIBLE = "contains a control, format or line separator character"
controls = st.characters(categories=("Cc", "Cf", "Zl", "Zp"))


@st.composite
def with_a_control_character(draw: st.DrawFn) -> str:
    """A short name with at least one control (NUL, C0, DEL, C1), format (zero-width,
    bidi override) or line/paragraph separator character in it."""
    head, tail = draw(st.text(printable, max_size=8)), draw(st.text(printable, max_size=8))
    return head + draw(controls) + tail


@given(bad=with_a_control_character(), where=st.sampled_from(["source", "metric", "unit"]))
def test_a_control_character_in_a_name_is_a_contract_violation(bad: str, where: str) -> None:
    assert reason(**{where: bad}) == f"{where}: {INVISIBLE}"


@given(bad=with_a_control_character())
def test_a_control_character_in_a_label_name_is_a_contract_violation(bad: str) -> None:
    assert reason(labels={bad: "x"}).endswith(f": {INVISIBLE}")


def test_a_label_value_is_bounded() -> None:
    assert validate_metric({**GOOD, "labels": {"note": "x" * 1024}}, NOW, SKEW)
    assert reason(labels={"note": "x" * 1025}).startswith("labels.note:")


def test_a_label_value_may_hold_any_text_but_nul() -> None:
    assert validate_metric({**GOOD, "labels": {"note": "line 1\nline 2\t"}}, NOW, SKEW)
    assert reason(labels={"note": "a\x00b"}) == "labels.note: contains a NUL character"
