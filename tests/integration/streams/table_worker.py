"""A worker with one changelog-backed table; once recovered it writes the table to a file.

Run as a script by ``test_changelog_recovery.py``:
``python table_worker.py SOURCE_TOPIC OUT_FILE`` with the stack's environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import faust

from dharma.streams.app import make_app, raw_topic, run_worker
from dharma.streams.settings import Settings
from dharma.streams.topics import TopicSpec

TABLE = "values"
NAME = "recovery"


def build(source: str, out: Path) -> faust.App:
    """The app: an agent on ``source`` (so the table's partition is assigned) and a timer
    that writes the recovered table to ``out`` once the worker is ready."""
    app, _ = make_app(Settings(), NAME)
    table = app.Table(TABLE, default=None, key_type=str, partitions=1)

    @app.agent(raw_topic(app, TopicSpec(source, 1)))
    async def ignore(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            pass

    @app.timer(0.2)
    async def dump() -> None:
        if app.tables.recovery.completed.is_set() and not out.exists():
            out.write_text(json.dumps(dict(table.data.items())))

    return app


if __name__ == "__main__":
    run_worker(build(sys.argv[1], Path(sys.argv[2])), "info")
