"""``dharma api token``: tokens of the read API.

    dharma api token create --user alice --roles viewer --roles security --mfa
    dharma api token list --json
    dharma api token revoke 0123456789abcdef

``create`` prints the token once (only its SHA-256 is stored, :mod:`dharma.sinks.api_tokens`);
``revoke`` marks it in PostgreSQL and in Redis, where every running API reads it on the
next request.  Roles may be repeated or comma-separated.  A bad user or role, an unknown
token to revoke, a store away: a message on stderr and exit 1.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import typer
from rich.table import Table

from dharma.cli.cmdb import JSON_HELP, emit_json, failures, plain, say
from dharma.cli.common import console, load_settings
from dharma.sinks.api_tokens import IssuedToken, TokenRow
from dharma.streams.errors import DharmaError
from dharma.streams.settings import Settings

__all__ = ["issue_token", "register", "token_app"]

token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


def issue_token(settings: Settings, user_id: str, roles: list[str], *, mfa: bool,
                ttl_days: int = 90) -> IssuedToken:
    """Create a token (e.g. ``dharma up``'s admin token); the only copy of its secret."""
    from dharma.sinks.api_tokens import create_token

    names = [r.strip() for role in roles for r in role.split(",") if r.strip()]
    return create_token(settings.postgres.dsn.get_secret_value(), user_id, names, mfa=mfa,
                        ttl=timedelta(days=ttl_days))


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _row_json(row: TokenRow) -> dict[str, object]:
    return {"token_id": row.token_id, "user_id": row.user_id, "roles": list(row.roles),
            "mfa": row.mfa, "created_at": row.created_at.isoformat(),
            "expires_at": row.expires_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}


@token_app.command()
def create(
    user: str = typer.Option(..., help="Who holds the token (the trust engine's user id)."),
    roles: list[str] = typer.Option(..., help="Roles (repeat, or comma-separate): viewer, "
                                    "security, finance, admin."),
    ttl_days: int = typer.Option(90, min=1, max=3650, help="Days until it expires."),
    mfa: bool = typer.Option(False, "--mfa", help="The holder authenticated with MFA."),
) -> None:
    """Create a token and print it (the only time it is shown)."""
    with failures():
        issued = issue_token(load_settings(), user, roles, mfa=mfa, ttl_days=ttl_days)
    row = issued.row
    say(f"token {row.token_id} for {row.user_id} (roles {', '.join(row.roles)}; "
        f"mfa {'yes' if row.mfa else 'no'}; expires {_utc(row.expires_at)})",
        err=True)
    say(issued.token)


@token_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Every token, newest first (never a secret)."""
    from dharma.sinks.api_tokens import list_tokens

    with failures():
        rows = list_tokens(load_settings().postgres.dsn.get_secret_value())
    if as_json:
        emit_json([_row_json(row) for row in rows])
        return
    table = Table("token", "user", "roles", "mfa", "created", "expires", "revoked",
                  title="API tokens")
    for row in rows:
        table.add_row(*plain(*_row_json(row).values()))
    console.print(table)


@token_app.command()
def revoke(token_id: str = typer.Argument(..., help="The token's id (as listed).")) -> None:
    """Revoke a token: every running API refuses it from its next request."""
    from dharma.api.gate import STANDING_TTL_S, GateUnavailable, mark_revoked
    from dharma.sinks.api_tokens import revoke_token

    settings = load_settings()
    with failures():
        row = revoke_token(settings.postgres.dsn.get_secret_value(), token_id)
        if row is None:
            raise DharmaError(f"no token {token_id!r}")
        try:
            asyncio.run(mark_revoked(settings.redis.url.get_secret_value(), token_id))
        except GateUnavailable as exc:
            raise DharmaError(f"token {token_id} revoked in PostgreSQL, but Redis did not "
                              f"answer ({exc}): a running API may accept it for up to "
                              f"{STANDING_TTL_S} s more") from None
    assert row.revoked_at is not None
    say(f"token {token_id} of {row.user_id} revoked at {_utc(row.revoked_at)}")


def register(api_app: typer.Typer) -> None:
    """Add ``dharma api token``."""
    api_app.add_typer(token_app, name="token")
