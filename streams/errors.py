"""One base exception; decode and contract failures carry what the dead-letter record keeps."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "undecodable", "unknown_schema", "contract_violation", "processing_error", "sink_error"
]


class DharmaError(Exception):
    """Base of every error Dharma Streams raises on purpose."""


class RejectedEvent(DharmaError):
    """An input event that goes to its dead-letter topic.

    Parameters
    ----------
    error_kind:
        Class of failure, one of the ``ErrorKind`` symbols of the DLQ contract.
    reason:
        Why, in words a human can act on.
    """

    def __init__(self, error_kind: ErrorKind, reason: str) -> None:
        super().__init__(f"{error_kind}: {reason}")
        self.error_kind: ErrorKind = error_kind
        self.reason = reason


class DecodeError(RejectedEvent):
    """The bytes are not a message of a known schema."""


class ContractViolation(RejectedEvent):
    """Decoded, but the values break the contract (e.g. NaN, a timestamp in the future)."""

    def __init__(self, reason: str) -> None:
        super().__init__("contract_violation", reason)


CheckpointFault = Literal["format", "version", "invalid", "error"]


class BrokenCheckpoint(DharmaError):
    """Bytes read back from a table that are not a valid state of their key.

    Whoever can write a table's changelog topic can put anything there; what a
    refused record means (the key starts afresh, or a security decision fails
    closed) is the reading capability's decision.

    Parameters
    ----------
    reason:
        ``format`` (not a record of this table: undecodable, truncated, oversized),
        ``version`` (a record of another layout), ``invalid`` (a field missing, of the
        wrong type or out of range) or ``error`` (the decoder failed: a bug); the
        label of ``dharma_checkpoints_rejected_total``.
    detail:
        What exactly, for the log.
    """

    def __init__(self, reason: CheckpointFault, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: CheckpointFault = reason
        self.detail = detail
