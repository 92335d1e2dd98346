"""A worker with one changelog-backed table; once recovered it writes the table to a file.

Run as a script (``python table_worker.py SOURCE_TOPIC OUT_FILE`` with the
stack's environment) by :func:`recovered_table`, which the recovery tests use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
        recovery = app.tables.recovery  # type: ignore[attr-defined]  # on TableManager, not TableManagerT
        if recovery.completed.is_set() and not out.exists():
            out.write_text(json.dumps(dict(table.data.items())))

    return app


def changelog_of(app_id: str) -> str:
    """The changelog topic of the table of the worker with app id ``app_id``."""
    return f"{app_id}-{NAME}-{TABLE}-changelog"


def recovered_table(stack_env: dict[str, str], app_id: str, source: str, workdir: Path,
                    poll: Callable[..., Any], **extra_env: str) -> dict[str, Any]:
    """Start the worker (app id ``app_id``, reading ``source``), wait until its table has
    recovered and return the table; the worker is stopped."""
    out, log = workdir / "table.json", workdir / "worker.log"
    env = {**os.environ, **stack_env, "DHARMA_WORKER_APP_ID": app_id, **extra_env}
    with log.open("wb") as sink:
        worker = subprocess.Popen([sys.executable, __file__, source, str(out)], env=env,
                                  stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        poll(out.exists, "the worker to recover its table", timeout=90,
             describe=lambda: log.read_text(errors="replace")[-3000:])
        table: dict[str, Any] = json.loads(out.read_text())
        return table
    finally:
        worker.terminate()
        worker.wait(30)


if __name__ == "__main__":
    run_worker(build(sys.argv[1], Path(sys.argv[2])), "info")
