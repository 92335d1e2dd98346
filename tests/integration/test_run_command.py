"""``dharma up`` (what ``make run`` calls): live output, the live page's URL and token, and
Ctrl-C leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

pytestmark = pytest.mark.integration


def test_up_shows_live_output_and_ctrl_c_leaves_no_process(tmp_path: Path, poll: Any,
                                                           pick_port: Any) -> None:
    state = tmp_path / "state"
    env = {
        **os.environ,
        "DHARMA_STACK_STATE_DIR": str(state),
        "DHARMA_WORKER_DATA_DIR": str(tmp_path / "worker"),
        "DHARMA_WORKER_APP_ID": "uptest",
        **{f"DHARMA_STACK_{name}_PORT": str(pick_port())
           for name in ("KAFKA", "REGISTRY", "POSTGRES", "REDIS", "BOLT")},
        "DHARMA_API_PORT": str(pick_port()),
    }
    for key in [k for k in env if k.startswith(("DHARMA_KAFKA", "DHARMA_REGISTRY_URL"))]:
        env.pop(key)
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dharma.cli", "up", "--rate", "300",
             "--topology", "ingest", "--topology", "anomaly", "--sample-every", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    family: set[int] = set()
    try:
        def live_output() -> bool:
            family.update(p.pid for p in psutil.Process(proc.pid).children(recursive=True))
            family.update(int(f.read_text()) for f in (state / "run").glob("*.pid"))
            return "prediction " in log.read_text(errors="replace")

        poll(live_output, "predictions printed live", timeout=180)
        assert "metrics at http://127.0.0.1:" in log.read_text()
        page = re.search(r"live page: (http://\S+)/#token=(\S+)", log.read_text())
        assert page, log.read_text()[-3000:]
        alerts = poll(lambda: httpx.get(f"{page[1]}/api/v1/alerts", timeout=10, headers={
            "Authorization": f"Bearer {page[2]}"}), "the API answering with the printed token")
        assert alerts.status_code == 200, alerts.text
        assert "<html" in httpx.get(f"{page[1]}/", timeout=10).text.lower()
    finally:  # passed or not, up stops what it started (a SIGKILL would orphan it all)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            proc.wait(timeout=90)
        finally:
            for pid in [proc.pid, *family]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).kill()
    text = log.read_text(errors="replace")
    assert "stopped: nothing left running" in text, text[-3000:]

    def alive() -> list[int]:
        return [pid for pid in family if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]

    poll(lambda: not alive(), "every started process gone", timeout=10)
    assert len(family) >= 9  # stack (4 servers and their children), 2 workers, API, generator
