"""The Avro contracts, one ``.avsc`` file per registry subject (``<topic>-value``/``-key``).

Dead-letter topics share one contract, ``dead-letter-value.avsc``.

>>> sorted(contract_subjects())[:2]
['alerts.notifications-key', 'alerts.notifications-value']
>>> load_schema("metrics.raw-value")["name"]
'MetricSample'
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

DLQ_SUFFIX = ".dlq"
DEAD_LETTER = "dead-letter-value"


def contract_file(subject: str) -> str:
    """The contract file name that governs ``subject``."""
    topic, _, field = subject.rpartition("-")
    if topic.endswith(DLQ_SUFFIX) and field == "value":
        return f"{DEAD_LETTER}.avsc"
    return f"{subject}.avsc"


@cache
def schema_text(subject: str) -> str:
    """The contract of ``subject`` as text (what is registered)."""
    resource = files(__name__).joinpath(contract_file(subject))
    if not resource.is_file():
        raise KeyError(f"no contract for subject {subject!r} in schemas/")
    return resource.read_text(encoding="utf-8")


def load_schema(subject: str) -> Any:
    """The contract of ``subject`` as parsed JSON."""
    return json.loads(schema_text(subject))


def contract_subjects() -> list[str]:
    """Subjects that have their own contract file (dead letters excluded)."""
    names = [r.name for r in files(__name__).iterdir() if r.name.endswith(".avsc")]
    return sorted(n.removesuffix(".avsc") for n in names if n != f"{DEAD_LETTER}.avsc")
