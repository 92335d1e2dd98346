"""Record models of the contracts, with the checks Avro cannot express.

Field names and types follow ``schemas/*.avsc`` (a test keeps them in step).
Timestamps are epoch milliseconds, as on the wire.
"""

from __future__ import annotations

import hashlib
import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from dharma.streams.errors import ContractViolation

MAX_NAME = 256
#: A name: no control characters (C0, DEL, C1), which no store or query language
#: handles alike (PostgreSQL refuses NUL outright), and no invisible format or line
#: separator characters (zero-width spaces, bidi overrides, U+2028), which make
#: look-alike series and alert text that renders other than it reads.  Checked by
#: pydantic-core's Rust regex engine.
NAME_PATTERN = r"^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]*$"
#: A free-text value: anything but NUL.
TEXT_PATTERN = r"^[^\x00]*$"
#: Longest label value (a label is a dimension, not a payload).
MAX_LABEL_VALUE = 1024

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]
LabelName = Annotated[str, StringConstraints(max_length=MAX_NAME, pattern=NAME_PATTERN)]

_CHECKED_NAME: TypeAdapter[str] = TypeAdapter(Name)
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE,
                                              pattern=TEXT_PATTERN)]
Unit = Annotated[str, StringConstraints(max_length=64, pattern=NAME_PATTERN)]
#: Oldest accepted sample time: 2000-01-01T00:00:00Z.
MIN_TS_MS = 946_684_800_000


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


class MetricSample(BaseModel):
    """A ``metrics.raw`` value that passed the contract.

    >>> MetricSample(source="web-01", metric="cpu", value=1.5, ts=1_700_000_000_000).unit is None
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Name
    metric: Name
    value: float
    ts: int = Field(ge=MIN_TS_MS)
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=64)
    unit: Unit | None = None

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"not finite ({value})")
        return value

    @property
    def series(self) -> str:
        """Series key: ``source|metric``."""
        return f"{self.source}|{self.metric}"


def month_start(ts: int) -> int:
    """Start (epoch ms) of the UTC month holding ``ts`` (epoch ms).

    >>> month_start(1_700_000_000_000)  # 2023-11-14
    1698796800000
    """
    t = datetime.fromtimestamp(ts / 1000, UTC)
    return int(datetime(t.year, t.month, 1, tzinfo=UTC).timestamp() * 1000)


def next_month(ts: int) -> int:
    """Start (epoch ms) of the UTC month after the one holding ``ts``.

    >>> next_month(1_700_000_000_000)  # 2023-12-01
    1701388800000
    """
    return month_start(month_start(ts) + 32 * 86_400_000)


def validate_metric(raw: dict[str, Any], now: int, max_future_skew_ms: int) -> MetricSample:
    """Check a decoded ``metrics.raw`` value; :class:`ContractViolation` says why not."""
    try:
        # strict: a decoded value has its wire types; "1.5" or True is not a double
        sample = MetricSample.model_validate(raw, strict=True)
    except ValidationError as exc:
        raise ContractViolation(first_error(exc)) from None
    if sample.ts > now + max_future_skew_ms:
        ahead = (sample.ts - now) / 1000
        limit = max_future_skew_ms // 1000
        raise ContractViolation(f"ts: {ahead:.0f}s in the future (limit {limit}s)")
    return sample


def checked_name(value: Any, what: str) -> str:
    """``value`` as a :data:`Name` (an id: not empty, not too long, nothing invisible);
    :class:`ContractViolation` naming ``what`` otherwise.

    >>> checked_name("web-01", "source")
    'web-01'
    >>> checked_name("web\u200b01", "source")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dharma.streams.errors.ContractViolation: contract_violation: source: contains a control, ...
    """
    try:
        return _CHECKED_NAME.validate_python(value)
    except ValidationError as exc:
        raise ContractViolation(f"{what}: {first_error(exc).split(': ', 1)[-1]}") from None


def first_error(exc: ValidationError) -> str:
    """The first validation error, in words (``field: what is wrong``).

    >>> try:
    ...     MetricSample(source="web" + chr(0), metric="cpu", value=1.0, ts=MIN_TS_MS)
    ... except ValidationError as exc:
    ...     print(first_error(exc))
    source: contains a control, format or line separator character
    """
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "value"
    msg = first["msg"]
    if first["type"] == "string_pattern_mismatch":
        pattern = (first.get("ctx") or {}).get("pattern")
        msg = "contains a NUL character" if pattern == TEXT_PATTERN else \
            "contains a control, format or line separator character"
    return f"{where}: {msg}"


#: Most bytes of an original key or value a dead letter keeps: a record the broker took
#: (up to its size limit) must still fit in a dead letter with its reason.
MAX_DEAD_LETTER_BYTES = 256 * 1024


def dead_letter(
    *, topic: str, partition: int, offset: int, error_kind: str, reason: str,
    key: bytes | None, value: bytes | None, ts: int | None = None,
) -> dict[str, Any]:
    """A ``<topic>.dlq`` record keeping the original bytes and the reason.

    An original key or value longer than :data:`MAX_DEAD_LETTER_BYTES` is kept
    truncated; the reason then says so, with its full size and sha256.

    >>> big = dead_letter(topic="t", partition=0, offset=7, error_kind="undecodable",
    ...                   reason="junk", key=b"k", value=bytes(300_000), ts=0)
    >>> len(big["original_value"]), big["reason"][:60]
    (262144, 'junk [original value truncated: 300000 bytes, sha256 886715e')
    """
    notes = []
    key, note = _bounded("key", key)
    notes += [note] if note else []
    value, note = _bounded("value", value)
    notes += [note] if note else []
    suffix = "".join(f" [{n}]" for n in notes)
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "reason": reason[:2000 - len(suffix)] + suffix,
        "error_kind": error_kind,
        "original_key": key,
        "original_value": value,
        "ts": ts if ts is not None else now_ms(),
    }


def _bounded(what: str, data: bytes | None) -> tuple[bytes | None, str | None]:
    if data is None or len(data) <= MAX_DEAD_LETTER_BYTES:
        return data, None
    digest = hashlib.sha256(data).hexdigest()
    return data[:MAX_DEAD_LETTER_BYTES], (
        f"original {what} truncated: {len(data)} bytes, sha256 {digest}")
