"""Faust's worker without its terminal spinner.

Faust's ``Worker`` keeps a spinner at log levels of WARN and above, and to
make it spin on every record it sets the root logger to DEBUG
(``Worker._setup_spinner_handler``; no upstream issue found): every
``log.debug`` of aiokafka and Faust, one per message sent, then builds a
record that the handlers throw away, a few per cent of a worker's time.
Pinned by ``tests/unit/test_faust_contract.py``.
"""

from __future__ import annotations

from typing import Any

from faust.worker import Worker as FaustWorker


class Worker(FaustWorker):
    """A Faust worker that never installs the spinner (nor its DEBUG root logger)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None
