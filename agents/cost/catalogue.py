"""The instance catalogue right-sizing chooses from: size, vCPU, memory, hourly list price.

A CSV file with the columns ``provider,family,size,vcpu,memory_gib,hourly_price``;
lines starting with ``#`` are comments (the packaged file states its region and
date there).  The whole file is checked before it is used: an unknown or missing
column, a bad value or a size listed twice raises :class:`CatalogueError` naming the
line.  ``DHARMA_COST_CATALOGUE`` replaces the packaged file.

>>> cat = parse_catalogue("provider,family,size,vcpu,memory_gib,hourly_price\\n"
...                       "aws,m5,m5.large,2,8,0.096\\naws,m5,m5.xlarge,4,16,0.192\\n")
>>> [s.size for s in cat.cheaper_in_family("m5.xlarge")]
['m5.large']
>>> parse_catalogue("provider,family,size,vcpu,memory_gib,hourly_price\\n"
...                 "aws,m5,m5.large,2,8,-1\\n")
Traceback (most recent call last):
...
dharma.agents.cost.catalogue.CatalogueError: catalogue line 2 (m5.large): hourly_price: \
Input should be greater than or equal to 0
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dharma.streams.errors import DharmaError
from dharma.streams.records import Name, first_error

__all__ = ["COLUMNS", "Catalogue", "CatalogueError", "InstanceSize", "load_catalogue",
           "parse_catalogue"]

#: The columns of a catalogue file, in this order.
COLUMNS = ("provider", "family", "size", "vcpu", "memory_gib", "hourly_price")


class CatalogueError(DharmaError):
    """The instance catalogue cannot be read (the message names the line)."""


class InstanceSize(BaseModel):
    """One instance size and its on-demand list price (USD per hour)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Name
    family: Name
    size: Name
    vcpu: float = Field(gt=0, allow_inf_nan=False)
    memory_gib: float = Field(gt=0, allow_inf_nan=False)
    hourly_price: float = Field(ge=0, allow_inf_nan=False)


@dataclass(frozen=True)
class Catalogue:
    """Instance sizes by name (``m5.large``)."""

    sizes: dict[str, InstanceSize]

    def get(self, size: str | None) -> InstanceSize | None:
        """The size called ``size``, or None when the catalogue does not list it."""
        return self.sizes.get(size) if size else None

    def cheaper_in_family(self, size: str) -> list[InstanceSize]:
        """The sizes of ``size``'s family with a lower price, cheapest first."""
        current = self.sizes[size]
        return sorted((s for s in self.sizes.values() if s.family == current.family
                       and s.provider == current.provider
                       and s.hourly_price < current.hourly_price),
                      key=lambda s: (s.hourly_price, s.size))


def _lines(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every line that is neither blank nor a comment."""
    content = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
               if line.strip() and not line.lstrip().startswith("#")]
    try:
        for (number, _), cells in zip(content, csv.reader(line for _, line in content),
                                      strict=True):
            yield number, cells
    except csv.Error as exc:
        raise CatalogueError(f"catalogue: not a valid CSV file: {exc}") from None


def _header(number: int, cells: list[str]) -> None:
    names = [c.strip() for c in cells]
    if unknown := [c for c in names if c not in COLUMNS]:
        raise CatalogueError(f"catalogue line {number}: unknown column {unknown[0]!r} "
                             f"(columns: {','.join(COLUMNS)})")
    if missing := [c for c in COLUMNS if c not in names]:
        raise CatalogueError(f"catalogue line {number}: column {missing[0]!r} missing")
    if len(set(names)) != len(names):
        raise CatalogueError(f"catalogue line {number}: a column is named twice")


def parse_catalogue(text: str) -> Catalogue:
    """The catalogue in ``text``, every line checked (see the module's doc)."""
    rows = _lines(text)
    first = next(rows, None)
    if first is None:
        raise CatalogueError("catalogue: empty (no header)")
    _header(*first)
    header = [c.strip() for c in first[1]]
    sizes: dict[str, InstanceSize] = {}
    where: dict[str, int] = {}
    for number, cells in rows:
        if len(cells) != len(header):
            raise CatalogueError(f"catalogue line {number}: {len(cells)} values for "
                                 f"{len(header)} columns")
        row = dict(zip(header, (c.strip() for c in cells), strict=True))
        try:
            entry = InstanceSize.model_validate(row)
        except ValidationError as exc:
            raise CatalogueError(f"catalogue line {number} ({row['size'][:80]}): "
                                 f"{first_error(exc)}") from None
        if entry.size in sizes:
            raise CatalogueError(f"catalogue line {number}: size {entry.size} repeats line "
                                 f"{where[entry.size]}")
        sizes[entry.size], where[entry.size] = entry, number
    if not sizes:
        raise CatalogueError("catalogue: no sizes")
    return Catalogue(sizes)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """The catalogue at ``path`` (``CostSettings.catalogue``), or the packaged one."""
    if path is None:
        return parse_catalogue(files("dharma.agents.cost").joinpath("catalogue.csv")
                               .read_text(encoding="utf-8"))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"catalogue {path}: cannot be read: {exc}") from None
    return parse_catalogue(text)
