"""Providers' bills in FOCUS 1.x: one rule set for a CSV export's rows and for the
``billing.focus`` records made of them.

FOCUS (the FinOps Open Cost and Usage Specification) names the columns, their types,
allowed values and nullability; :class:`FocusRow` checks a line against them: costs are
decimals in FOCUS's numeric format (no currency sign, no thousands separator, no plus
sign), kept exact to :data:`SCALE` decimal places; date/times are UTC ISO 8601
(``ChargePeriodStart`` inclusive, ``ChargePeriodEnd`` exclusive and later);
``BillingCurrency`` is an ISO 4217 code; ``ChargeCategory`` is one of
:data:`CHARGE_CATEGORIES`; ``PricingQuantity`` and ``PricingUnit`` are null on Tax lines
and present on Usage and Purchase lines that are not corrections (a negative quantity is
a correction's); ``ResourceType`` goes with a ``ResourceId``.

Every record carries ``x_line_id``, a hash of its content (:func:`line_id`), so a file
imported twice stores each line once; a worker recomputes it and refuses a record whose
id does not match.

>>> row = FocusRow.model_validate({
...     "BillingAccountId": "acct-1", "ChargeCategory": "Usage",
...     "ChargePeriodStart": "2026-11-01T00:00:00Z", "ChargePeriodEnd": "2026-11-02T00:00:00Z",
...     "BilledCost": "2.40", "EffectiveCost": "2.4", "ListCost": "2.88",
...     "BillingCurrency": "USD", "PricingQuantity": "24", "PricingUnit": "Hours",
...     "ResourceId": "web-01", "ResourceType": "Virtual Machine", "ServiceName": "EC2",
...     "ProviderName": "AWS", "Tags": '{"team": "web", "billable": true}'})
>>> record = row.record(occurrence=1)
>>> record["BilledCost"], record["ChargePeriodStart"], record["Tags"]
(Decimal('2.400000000000000000'), 1793491200000, {'team': 'web', 'billable': 'true'})
>>> record["x_line_id"] == line_id(record) == row.record(occurrence=1)["x_line_id"]
True
>>> record["x_line_id"] != row.record(occurrence=2)["x_line_id"]
True
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from dharma.sinks.bills import BilledRow
from dharma.streams.errors import ContractViolation

__all__ = ["CHARGE_CATEGORIES", "SCALE", "FocusRow", "billed_row", "line_id", "reasons"]

#: Decimal places a cost or quantity keeps (Avro ``decimal(38, 18)``); a value with more
#: is rounded half-even there, a change below 10**-18 of the currency.
SCALE = 18
PRECISION = 38
QUANTUM = Decimal(1).scaleb(-SCALE)
#: Arithmetic wide enough for every decimal(38, 18) (the default context keeps 28 digits).
_EXACT = Context(prec=2 * PRECISION, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])

#: FOCUS 1.x ChargeCategory allowed values.
Category = Literal["Usage", "Purchase", "Tax", "Credit", "Adjustment"]
CHARGE_CATEGORIES: tuple[str, ...] = get_args(Category)

# FOCUS numeric format: an integer, a decimal or E notation; no plus sign, no separators.
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE]-?\d+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_YEAR_10000_MS = 253_402_300_800_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _decimal(value: object) -> Decimal:
    """A FOCUS decimal (text, or a :class:`~decimal.Decimal` read from a record), exact to
    :data:`SCALE` places."""
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value):
            raise ValueError(f"{value!r} is not a FOCUS number (digits, one '.', optional "
                             "E exponent, '-' for negatives; no sign, separator or unit)")
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{value!r} is not a finite decimal")
    try:
        exact = _EXACT.add(value.quantize(QUANTUM, context=_EXACT), 0)  # adding 0: no -0
    except InvalidOperation:
        exact = None
    if exact is None or len(exact.as_tuple().digits) > PRECISION:
        raise ValueError(f"{value} is beyond {PRECISION - SCALE} integer digits")
    return exact


def _instant(value: object) -> int:
    """Epoch ms of a FOCUS date/time: ISO 8601 in UTC (``2026-11-01T00:00:00Z``), or ms."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < _YEAR_10000_MS:
            raise ValueError(f"{value} ms is not a date/time from 1970 to 9999")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date/time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not ISO 8601 (2026-11-01T00:00:00Z)") from None
    offset = moment.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        raise ValueError(f"{value!r} is not in UTC (FOCUS date/times end in Z)")
    if moment.microsecond % 1000:
        raise ValueError(f"{value!r} is finer than a millisecond")
    return _instant((moment - _EPOCH) // timedelta(milliseconds=1))


def _currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (three capital letters, "
                         "e.g. USD)")
    return value


def _present(value: object) -> object:
    if value is None or value == "":
        raise ValueError("must not be null (empty)")
    return value


def _tags(value: object) -> dict[str, str]:
    """FOCUS Tags: a JSON object of finalized tags (scalar values), or a map already."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value, object_pairs_hook=_unique_keys)
        except ValueError as exc:
            raise ValueError(f"not a JSON object of tags: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object of tags")
    tags = {}
    for key, tag in value.items():
        if isinstance(tag, dict | list):
            raise ValueError(f"tag {key!r}: a value must be a string, number or boolean")
        if tag is not None:
            tags[str(key)] = tag if isinstance(tag, str) else json.dumps(tag)
    return tags


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("a tag key appears twice")
    return dict(pairs)


Money = Annotated[Decimal, BeforeValidator(_decimal)]
Instant = Annotated[int, BeforeValidator(_instant)]
Required = Annotated[str, BeforeValidator(_present)]


def _blank(value: object) -> object:
    return None if value == "" else value


Nullable = Annotated[str | None, BeforeValidator(_blank)]


class FocusRow(BaseModel):
    """One FOCUS line, checked (see the module docstring); empty cells are nulls."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    BillingAccountId: Required
    ChargeCategory: Annotated[Category, BeforeValidator(_present)]
    ChargeClass: Annotated[Literal["Correction"] | None, BeforeValidator(_blank)] = None
    ChargeDescription: Nullable = None
    ChargePeriodStart: Annotated[Instant, BeforeValidator(_present)]
    ChargePeriodEnd: Annotated[Instant, BeforeValidator(_present)]
    BilledCost: Annotated[Money, BeforeValidator(_present)]
    EffectiveCost: Annotated[Money, BeforeValidator(_present)]
    ListCost: Annotated[Money, BeforeValidator(_present)]
    BillingCurrency: Annotated[str, BeforeValidator(_currency)]
    PricingQuantity: Annotated[Money | None, BeforeValidator(_blank)] = None
    PricingUnit: Nullable = None
    ResourceId: Nullable = None
    ResourceName: Nullable = None
    ResourceType: Nullable = None
    ServiceName: Required
    RegionId: Nullable = None
    ProviderName: Required
    Tags: Annotated[dict[str, str], BeforeValidator(_tags)] = {}

    @model_validator(mode="after")
    def _consistent(self) -> FocusRow:
        if self.ChargePeriodEnd <= self.ChargePeriodStart:
            raise ValueError("ChargePeriodEnd (exclusive) must be after ChargePeriodStart")
        priced = {"PricingQuantity": self.PricingQuantity, "PricingUnit": self.PricingUnit}
        for name, value in priced.items():
            if self.ChargeCategory == "Tax" and value is not None:
                raise ValueError(f"{name} must be null on a Tax line")
            if (self.ChargeCategory in ("Usage", "Purchase") and self.ChargeClass is None
                    and value is None):
                raise ValueError(f"{name} must not be null on a {self.ChargeCategory} line "
                                 "that is not a correction")
        if self.PricingQuantity is not None and self.PricingQuantity < 0 \
                and self.ChargeClass is None:
            raise ValueError("PricingQuantity may be negative on a correction only")
        if self.ResourceId is None and self.ResourceType is not None:
            raise ValueError("ResourceType without a ResourceId")
        texts = [v for v in self.model_dump().values() if isinstance(v, str)]
        if any("\x00" in t for t in [*texts, *self.Tags.keys(), *self.Tags.values()]):
            raise ValueError("a NUL character in a cell (no store can keep it)")
        return self

    def record(self, occurrence: int) -> dict[str, Any]:
        """This line as a ``billing.focus`` record, the ``occurrence``-th identical line of
        its file (from 1)."""
        body = {"x_occurrence": occurrence, **self.model_dump()}
        return {"x_line_id": line_id(body), **body}

    @property
    def key(self) -> str:
        """The record's key: its resource, or its billing account."""
        return self.ResourceId or self.BillingAccountId


def _canonical(value: object) -> object:
    if isinstance(value, Decimal):
        return str(int(value.scaleb(SCALE, context=_EXACT)))  # one text per value
    if isinstance(value, dict):
        return sorted(value.items())
    return value


def line_id(record: dict[str, Any]) -> str:
    """The id of a ``billing.focus`` record: sha256 (first 32 hex digits) of every field but
    ``x_line_id`` itself, in canonical form (sorted names, decimals as unscaled integers)."""
    content = {k: _canonical(v) for k, v in record.items() if k != "x_line_id"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def reasons(error: ValidationError) -> list[str]:
    """A validation error as one reason per problem, named by its column.

    >>> try:
    ...     FocusRow.model_validate({"BillingCurrency": "usd"})
    ... except ValidationError as exc:
    ...     print(*(r[:50] for r in reasons(exc) if r.startswith("Billing")), sep="; ")
    BillingAccountId: missing; BillingCurrency: 'usd' is not an ISO 4217 currency
    """
    out = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] == "missing":
            message = "missing"
        out.append(f"{where}: {message}" if where else message)
    return out


#: The decimal fields of a ``billing.focus`` record.
DECIMALS = ("BilledCost", "EffectiveCost", "ListCost", "PricingQuantity")
#: Bytes of the largest unscaled decimal(38, 18) (10**38 needs 127 bits and a sign).
_MAX_DECIMAL_BYTES = 16


def _from_avro(value: object) -> object:
    """A decimal as the worker's codec reads it (the unscaled integer's big-endian
    two's-complement bytes: logical types are not applied), or as it is."""
    if not isinstance(value, bytes):
        return value
    if len(value) > _MAX_DECIMAL_BYTES:
        raise ValueError(f"a decimal of {len(value)} bytes: beyond decimal({PRECISION}, "
                         f"{SCALE})")
    return Decimal(int.from_bytes(value, "big", signed=True)).scaleb(-SCALE, context=_EXACT)


def billed_row(raw: dict[str, Any]) -> BilledRow:
    """A decoded ``billing.focus`` record as a row to store, checked by the rules a file's
    line is checked by, its ``x_line_id`` recomputed; :class:`ContractViolation` when it
    breaks them."""
    try:
        fields = {k: _from_avro(raw[k]) if k in DECIMALS else raw[k] for k in FocusRow.model_fields}
        row = FocusRow.model_validate(fields)
    except ValidationError as exc:
        raise ContractViolation("; ".join(reasons(exc))) from None
    except ValueError as exc:
        raise ContractViolation(str(exc)) from None
    occurrence = raw["x_occurrence"]
    if not isinstance(occurrence, int) or occurrence < 1:
        raise ContractViolation(f"x_occurrence {occurrence!r}: lines count from 1")
    record = row.record(occurrence)
    if record["x_line_id"] != raw["x_line_id"]:
        raise ContractViolation(f"x_line_id {raw['x_line_id']!r} is not the hash of the "
                                f"line's content ({record['x_line_id']})")
    return BilledRow(**record)
