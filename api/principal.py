"""Who is asking: the identity a request's token stands for."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A token's holder, as the trust engine decided it."""

    user_id: str
    roles: tuple[str, ...]
    token_id: str
