"""Hostile checkpoint payloads shared by the unit and integration tests: pickles that
run a command when loaded, the way a record on a changelog topic would try to."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import Any


class Exec:
    """Pickles to a call of ``os.system`` creating ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def exec_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when loaded."""
    return pickle.dumps(Exec(marker))


def via_state_module(inner: bytes) -> bytes:
    """A pickle calling ``pickle.loads(inner)``, with ``pickle.loads`` fetched as a name
    under ``dharma.agents.anomaly.state`` (what the restricted unpickler of pickled
    checkpoints let through: any name under a module prefix, dotted names walked)."""
    def name(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()

    return (b"\x80\x04" + name("dharma.agents.anomaly.state") + name("pickle.loads") + b"\x93"
            + b"B" + struct.pack("<I", len(inner)) + inner + b"\x85R.")
