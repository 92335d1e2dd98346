"""``dharma generate`` ends on Ctrl-C or SIGTERM, flushing and writing its labels, even
when started with SIGINT ignored (as a background job of a shell, or a child of a
process that ignores it: Python leaves an inherited SIG_IGN in place)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dharma.streams.tailer import Tailer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_generator_stops_on_a_signal_even_with_sigint_ignored(
        settings: Any, stack_env: dict[str, str], tmp_path: Path, poll: Any,
        stop: int) -> None:
    log = tmp_path / "generate.log"
    tail = Tailer(settings, ["metrics.raw"])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dharma.cli", "generate", "--rate", "50", "--duration",
             "600", "--labels-dir", str(tmp_path)],
            env={**os.environ, **stack_env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        poll(lambda: tail.poll(0.5), "the generator producing", timeout=120,
             describe=lambda: log.read_text(errors="replace")[-2000:])
        proc.send_signal(stop)
        assert proc.wait(60) == 0, log.read_text(errors="replace")[-2000:]
    finally:
        tail.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert (tmp_path / "labels.json").exists(), log.read_text(errors="replace")[-2000:]
