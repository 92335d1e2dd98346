"""``dharma api token create/list/revoke`` through the real command line, against the
session's PostgreSQL and Redis."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from dharma.cli import app as cli

pytestmark = pytest.mark.integration

runner = CliRunner()


def _run(*args: str) -> Any:
    result = runner.invoke(cli, ["api", "token", *args])
    assert result.exit_code == 0, result.output
    return result


def test_create_list_revoke(api: httpx.Client, settings: Any) -> None:
    created = _run("create", "--user", "carol", "--roles", "viewer,finance", "--roles",
                   "security", "--mfa", "--ttl-days", "7")
    token = created.stdout.strip().splitlines()[-1]
    token_id = token.split("_")[1]
    assert token.startswith(f"dhk_{token_id}_")
    me = api.get("/api/v1/access/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["user_id"] == "carol" and me["roles"] == ["viewer", "finance", "security"]
    assert me["mfa"] is True
    listed = {row["token_id"]: row for row in json.loads(_run("list", "--json").stdout)}
    assert listed[token_id]["revoked_at"] is None and token not in json.dumps(listed)
    _run("revoke", token_id)
    after = {row["token_id"]: row for row in json.loads(_run("list", "--json").stdout)}
    assert after[token_id]["revoked_at"] is not None
    refused = api.get("/api/v1/access/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401


@pytest.mark.parametrize("args", [
    ["create", "--user", "x' OR 1=1 --", "--roles", "viewer"],
    ["create", "--user", "dave", "--roles", "a role"],
    ["create", "--user", "dave", "--roles", "viewer", "--ttl-days", "0"],
    ["revoke", "ffffffffffffffff"],
])
def test_bad_input_is_one_line_and_exit_1(args: list[str], settings: Any) -> None:
    result = runner.invoke(cli, ["api", "token", *args])
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
