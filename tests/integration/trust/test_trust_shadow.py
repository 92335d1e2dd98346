"""``dharma policy shadow`` reads audit.logs from the broker and compares policy sets."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from trust_helpers import business_ts, seed_event
from typer.testing import CliRunner

from dharma.agents.trust import default_policy_dir
from dharma.cli import app

pytestmark = pytest.mark.integration


def test_shadow_reports_tightened_decisions(settings: Any, producer: Any, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    shutil.copy(default_policy_dir() / "90-forbid.yaml", candidate)  # no permits at all
    tag = uuid.uuid4().hex[:8]
    for i in range(3):
        event = seed_event(f"evt-shadow-{tag}-{i}", business_ts(), user_id=f"shadow_{tag}")
        producer.produce("audit.logs", event["user_id"], event)
    producer.flush()
    result = CliRunner().invoke(app, ["policy", "shadow", str(candidate), "--since-minutes", "5",
                                      "--limit", "1000"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "ALLOW->DENY" in result.output
    assert f"evt-shadow-{tag}-0" in result.output or "samples" in result.output
