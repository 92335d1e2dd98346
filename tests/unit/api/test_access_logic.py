"""Pure parts of API access: tokens as presented, resources of requests, answers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.trust.models import _RESOURCE
from dharma.api.resource import is_resource, request_resource
from dharma.sinks.api_tokens import TokenRow, matches, mint, parse_token, secret_digest

TEMPLATE = "/api/v1/cmdb/assets/{asset_id}/blast-radius"
SEGMENT = st.text(st.characters(codec="utf-8"), min_size=0, max_size=300)


def test_a_minted_token_parses_back_and_its_secret_matches() -> None:
    token, token_id, secret = mint()
    parsed = parse_token(token)
    assert parsed is not None and parsed == (token_id, secret)
    now = datetime.now(UTC)
    row = TokenRow(token_id, secret_digest(secret), "u", ("viewer",), True, now, now, None)
    assert matches(row, secret)
    assert not matches(row, mint()[2]) and not matches(None, secret)


@given(st.text(max_size=200))
def test_only_well_formed_tokens_parse(text: str) -> None:
    parsed = parse_token(text)
    if parsed is not None:
        assert text == f"dhk_{parsed.token_id}_{parsed.secret}"
        assert re.fullmatch(r"[0-9a-f]{16}", parsed.token_id) and len(parsed.secret) == 43


@given(SEGMENT)
def test_a_request_resource_is_always_one_the_engine_accepts(value: str) -> None:
    path = f"/api/v1/cmdb/assets/{value}/blast-radius"
    resource = request_resource(path, TEMPLATE)
    assert re.match(_RESOURCE, resource) and resource
    assert resource in (path[1:], "api/v1/cmdb/assets/asset_id/blast-radius")
    assert (resource == path[1:]) == is_resource(path[1:])


def test_the_concrete_path_names_the_resource_when_it_can() -> None:
    assert request_resource("/api/v1/cmdb/assets/db-1/blast-radius", TEMPLATE) == \
        "api/v1/cmdb/assets/db-1/blast-radius"
    for hostile in ("..", "' OR 1=1 --", "", "x" * 129, "%00", "\x00"):
        assert request_resource(f"/api/v1/cmdb/assets/{hostile}/blast-radius", TEMPLATE) == \
            "api/v1/cmdb/assets/asset_id/blast-radius"


def test_a_path_template_with_a_converter_names_the_parameter() -> None:
    assert request_resource("/api/v1/x/a//b", "/api/v1/x/{rest:path}") == "api/v1/x/rest"
