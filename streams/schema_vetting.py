"""Checks a writer schema must pass before any record written with it is decoded.

Whoever can produce to a topic can register a schema (Confluent serializers do by
default) and name it in a record, and decoding a record walks its writer
schema, so a schema can be a denial of service: an array whose items encode in
zero bytes (``null``, a record of such fields, ``fixed`` of size 0) lets a
20-byte record claim 2**62 items, and a reader skips each of them, for ever,
on the event loop.  Maps cannot do it (every entry has a key).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SchemaRefused", "vet_writer_schema"]

#: Named types nested this deep are refused outright (no decoder needs more).
MAX_DEPTH = 64


class SchemaRefused(ValueError):
    """A writer schema no record may be decoded with."""


def vet_writer_schema(schema: Any) -> None:
    """Raise :class:`SchemaRefused` when ``schema`` (JSON, as the registry holds it) has
    an array of zero-width items or is nested beyond :data:`MAX_DEPTH`.

    >>> vet_writer_schema({"type": "array", "items": "long"})
    >>> try:
    ...     vet_writer_schema({"type": "record", "name": "R", "fields": [
    ...         {"name": "pad", "type": {"type": "array", "items": "null"}}]})
    ... except SchemaRefused as exc:
    ...     print(exc)
    an array of zero-width items (null)
    """
    _Walker().width(schema, depth=0)


class _Walker:
    """Computes whether a type can encode in zero bytes, checking arrays on the way."""

    def __init__(self) -> None:
        self.named: dict[str, bool] = {}  # full name -> zero width (False while being walked)

    def width(self, schema: Any, depth: int, namespace: str = "") -> bool:
        """True when a value of ``schema`` can take zero bytes."""
        if depth > MAX_DEPTH:
            raise SchemaRefused(f"types nested more than {MAX_DEPTH} deep")
        if isinstance(schema, str):
            return self._named_or_primitive(schema, namespace)
        if isinstance(schema, list):  # a union: its branch index takes at least a byte
            for branch in schema:
                self.width(branch, depth + 1, namespace)
            return False
        if not isinstance(schema, dict):
            raise SchemaRefused(f"not a schema: {type(schema).__name__}")
        kind = schema.get("type")
        if kind == "array":
            items = schema.get("items")
            if self.width(items, depth + 1, namespace):
                raise SchemaRefused(f"an array of zero-width items ({_describe(items)})")
            return False
        if kind == "map":
            self.width(schema.get("values"), depth + 1, namespace)
            return False
        if kind in ("record", "error", "enum", "fixed"):
            return self._define(schema, kind, depth, namespace)
        return self.width(kind, depth + 1, namespace)

    def _define(self, schema: dict[str, Any], kind: str, depth: int, namespace: str) -> bool:
        name = str(schema.get("name", ""))
        space = str(schema.get("namespace", namespace))
        full = name if "." in name or not space else f"{space}.{name}"
        self.named[full] = False  # a recursive reference is not zero-width: it nests
        if kind == "fixed":
            zero = schema.get("size") == 0
        elif kind == "enum":
            zero = False  # the symbol's index takes a byte
        else:
            widths = [self.width(f.get("type"), depth + 1, space)
                      for f in schema.get("fields", []) if isinstance(f, dict)]
            zero = all(widths)
        self.named[full] = zero
        return zero

    def _named_or_primitive(self, name: str, namespace: str) -> bool:
        if name == "null":
            return True
        full = name if "." in name or not namespace else f"{namespace}.{name}"
        return self.named.get(full, self.named.get(name, False))


def _describe(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    return str(schema)
