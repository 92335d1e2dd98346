"""The instance catalogue: the packaged file covers the estate, a bad file names its line."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from dharma.agents.cost.catalogue import CatalogueError, load_catalogue, parse_catalogue
from dharma.streams.settings import Settings
from dharma.synthetic.estate import INSTANCE_TYPES

HEADER = "provider,family,size,vcpu,memory_gib,hourly_price\n"


def test_the_packaged_catalogue_prices_the_generators_types_as_the_generator_does() -> None:
    catalogue = load_catalogue()
    for size, price in INSTANCE_TYPES.values():
        entry = catalogue.get(size)
        assert entry is not None, size
        assert entry.hourly_price == price


@pytest.mark.parametrize("family, sizes", [
    ("t3", ["t3.nano", "t3.micro", "t3.small", "t3.medium", "t3.large", "t3.xlarge",
            "t3.2xlarge"]),
    ("m5", ["m5.large", "m5.xlarge", "m5.2xlarge", "m5.4xlarge"]),
    ("r5", ["r5.large", "r5.xlarge", "r5.2xlarge", "r5.4xlarge"]),
    ("c5", ["c5.large", "c5.xlarge", "c5.2xlarge", "c5.4xlarge"]),
    ("cache.r6g", ["cache.r6g.large", "cache.r6g.xlarge", "cache.r6g.2xlarge",
                   "cache.r6g.4xlarge"]),
    ("db.r5", ["db.r5.large", "db.r5.xlarge", "db.r5.2xlarge", "db.r5.4xlarge"]),
])
def test_each_family_runs_from_its_smallest_to_its_largest_size(family: str,
                                                                  sizes: list[str]) -> None:
    catalogue = load_catalogue()
    listed = sorted((s for s in catalogue.sizes.values() if s.family == family),
                    key=lambda s: s.hourly_price)
    assert [s.size for s in listed] == sizes
    # a larger size never has fewer vCPUs or less memory than a cheaper one
    for smaller, larger in itertools.pairwise(listed):
        assert smaller.vcpu <= larger.vcpu and smaller.memory_gib < larger.memory_gib


def test_cheaper_in_family_is_cheapest_first_and_stays_in_the_family() -> None:
    catalogue = load_catalogue()
    assert [s.size for s in catalogue.cheaper_in_family("r5.2xlarge")] == \
        ["r5.large", "r5.xlarge"]
    assert catalogue.cheaper_in_family("t3.nano") == []
    assert catalogue.get("x9.huge") is None and catalogue.get(None) is None


@pytest.mark.parametrize("text, message", [
    ("# prices\n" + HEADER.replace("vcpu", "cores"),
     "catalogue line 2: unknown column 'cores'"),
    (HEADER.replace(",hourly_price", ""), "catalogue line 1: column 'hourly_price' missing"),
    (HEADER + "aws,m5,m5.large,2,8,-0.096\n",
     "catalogue line 2 (m5.large): hourly_price: Input should be greater than or equal to 0"),
    (HEADER + "aws,m5,m5.large,2,8,0.096\n\n# a comment\naws,m5,m5.large,2,8,0.1\n",
     "catalogue line 5: size m5.large repeats line 2"),
    (HEADER + "aws,m5,m5.large,2,8\n", "catalogue line 2: 5 values for 6 columns"),
    (HEADER + "aws,m5,m5.large,two,8,0.096\n", "catalogue line 2 (m5.large): vcpu:"),
    (HEADER + "aws,m5,m5.large,2,8,nan\n", "catalogue line 2 (m5.large): hourly_price:"),
    (HEADER + "aws,m5,,2,8,0.096\n", "catalogue line 2 (): size:"),
    (HEADER, "catalogue: no sizes"),
    ("# only a comment\n", "catalogue: empty (no header)"),
])
def test_a_bad_catalogue_is_refused_naming_its_line(text: str, message: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(text)
    assert str(caught.value).startswith(message)


def test_dharma_cost_catalogue_replaces_the_packaged_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "prices.csv"
    own.write_text(HEADER + "gcp,e2,e2-standard-2,2,8,0.067\n")
    monkeypatch.setenv("DHARMA_COST_CATALOGUE", str(own))
    catalogue = load_catalogue(Settings().cost.catalogue)
    assert list(catalogue.sizes) == ["e2-standard-2"]
    assert catalogue.sizes["e2-standard-2"].provider == "gcp"


def test_a_catalogue_that_cannot_be_read_says_which(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"missing\.csv: cannot be read"):
        load_catalogue(tmp_path / "missing.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CatalogueError, match=r"binary\.csv: cannot be read"):
        load_catalogue(binary)
