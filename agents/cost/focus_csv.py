r"""A FOCUS 1.x CSV export read line by line: the columns it must have, what becomes of
the others, and every line checked by :class:`~dharma.agents.cost.focus.FocusRow`, with
its line number in the file when it is invalid.

>>> text = ("BilledCost,BillingAccountId,BillingCurrency,ChargeCategory,ChargePeriodEnd,"
...         "ChargePeriodStart,EffectiveCost,ListCost,PricingQuantity,PricingUnit,"
...         "ProviderName,ServiceName,Colour\n"
...         "0.5,acct,USD,Usage,2025-03-02T00:00:00Z,2025-03-01T00:00:00Z,0.5,0.5,24,Hours,"
...         "AWS,EC2,red\n"
...         "0.5,acct,USD,Usage,2025-03-02T00:00:00Z,2025-03-01T00:00:00Z,0.5,0.5,24,,"
...         "AWS,EC2,red\n")
>>> parsed = parse_focus_csv(text)
>>> len(parsed.records), parsed.invalid
(1, [(3, ['PricingUnit must not be null on a Usage line that is not a correction'])])
>>> parsed.notes
['columns ignored (neither FOCUS nor x_-prefixed): Colour']
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from dharma.agents.cost.focus import FocusRow, line_id, reasons
from dharma.streams.errors import DharmaError

__all__ = ["COLUMNS", "REQUIRED_COLUMNS", "UNKEPT_COLUMNS", "FocusFileError", "FocusImport",
           "FocusReader", "parse_focus_csv"]

#: FOCUS columns a file must have (FOCUS makes them mandatory; each is kept).
REQUIRED_COLUMNS = (
    "BilledCost", "BillingAccountId", "BillingCurrency", "ChargeCategory", "ChargePeriodEnd",
    "ChargePeriodStart", "EffectiveCost", "ListCost", "PricingQuantity", "PricingUnit",
    "ProviderName", "ServiceName",
)
#: FOCUS columns kept when present (conditional in FOCUS, or nullable): absent means null.
OPTIONAL_COLUMNS = (
    "ChargeClass", "ChargeDescription", "RegionId", "ResourceId", "ResourceName",
    "ResourceType", "Tags",
)
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
#: The other FOCUS 1.0-1.2 columns: known, not kept.
UNKEPT_COLUMNS = frozenset((
    "AvailabilityZone", "BillingAccountName", "BillingAccountType", "BillingPeriodEnd",
    "BillingPeriodStart", "CapacityReservationId", "CapacityReservationStatus", "ChargeFrequency",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit", "ContractedCost",
    "ContractedUnitPrice", "InvoiceId", "InvoiceIssuerName", "ListUnitPrice", "PricingCategory",
    "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "PublisherName", "RegionName", "ServiceCategory",
    "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId",
    "SubAccountName", "SubAccountType",
))


class FocusFileError(DharmaError):
    """A file that is not a FOCUS export (its header), or stops being CSV at some line."""


#: Hears each invalid line: its number in the file and the reasons.
OnInvalid = Callable[[int, list[str]], None]


class FocusReader:
    """The valid lines of a FOCUS CSV export as ``(key, billing.focus record)`` pairs,
    read as they are iterated (a file of any size), each invalid line told to
    ``on_invalid``.

    The header is read when the reader is made: :class:`FocusFileError` when it is not
    a FOCUS export's.  FOCUS columns not in :data:`COLUMNS` are left out; other columns
    are kept as tags when ``x_``-prefixed (FOCUS's prefix of custom columns) and ignored,
    with a note, otherwise.  Line numbers are those of the file (the header is line 1;
    a quoted cell may span lines).
    """

    def __init__(self, stream: Iterable[str], on_invalid: OnInvalid) -> None:
        self._lines = _lines(csv.reader(stream))
        _, self._header = next(self._lines, (0, []))
        self.notes = _header_notes(self._header)
        self._on_invalid = on_invalid

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        seen: Counter[str] = Counter()
        for number, cells in self._lines:
            try:
                row = _row(self._header, cells)
            except ValidationError as exc:
                self._on_invalid(number, reasons(exc))
                continue
            except ValueError as exc:
                self._on_invalid(number, [str(exc)])
                continue
            content = line_id(row.model_dump())
            seen[content] += 1
            yield row.key, row.record(seen[content])


@dataclass
class FocusImport:
    """What a FOCUS CSV holds: valid records (with their keys), invalid lines, notes."""

    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: ``(line number, reasons)`` of each invalid line.
    invalid: list[tuple[int, list[str]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_focus_csv(text: str) -> FocusImport:
    """Every line of a FOCUS CSV export held in ``text``, checked (see
    :class:`FocusReader`)."""
    result = FocusImport()
    reader = FocusReader(io.StringIO(text), lambda line, why: result.invalid.append((line, why)))
    result.records.extend(reader)
    result.notes.extend(reader.notes)
    return result


def _lines(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """The non-blank records of a CSV reader with the file line each begins on."""
    line = reader.line_num
    try:
        for cells in reader:
            first, line = line + 1, reader.line_num
            if any(cells):
                yield first, cells
    except csv.Error as exc:
        raise FocusFileError(f"line {line + 1}: not CSV ({exc})") from None


def _header_notes(header: list[str]) -> list[str]:
    """What to say of a header; :class:`FocusFileError` when it is not a FOCUS export's."""
    if not header:
        raise FocusFileError("empty file: no header line")
    if twice := sorted({name for name in header if header.count(name) > 1}):
        raise FocusFileError(f"columns named twice: {', '.join(twice)}")
    if missing := [name for name in REQUIRED_COLUMNS if name not in header]:
        raise FocusFileError(f"not a FOCUS export: no {', '.join(missing)} column")
    ignored = [name for name in header if name not in COLUMNS and name not in UNKEPT_COLUMNS
               and not name.startswith("x_")]
    if not ignored:
        return []
    return [f"columns ignored (neither FOCUS nor x_-prefixed): {', '.join(ignored)}"]


def _row(header: list[str], cells: list[str]) -> FocusRow:
    """A line as a checked row, its x_ columns among its tags."""
    if len(cells) != len(header):
        raise ValueError(f"{len(cells)} cells, the header has {len(header)}")
    named = dict(zip(header, cells, strict=True))
    extras = {k: v for k, v in named.items() if k.startswith("x_") and v != ""}
    row = FocusRow.model_validate({k: v for k, v in named.items() if k in COLUMNS})
    if clash := sorted(extras.keys() & row.Tags.keys()):
        raise ValueError(f"{', '.join(clash)}: both a column and a tag")
    return row.model_copy(update={"Tags": {**row.Tags, **extras}})
