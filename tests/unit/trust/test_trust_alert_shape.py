"""An alert has one shape whoever raises it (issue #12, item 3): the same fields, a
32-hex SHA-256 fingerprint of (source, subject, kind), the common labels, valid
against the ``alerts.notifications`` contract; self-healing reads them alike."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
from harness import AnomalyHarness

from dharma.agents.trust.alerts import revalidation_alert
from dharma.agents.trust.models import parse_access_event
from dharma.streams import alerting

ROOT = Path(__file__).resolve().parents[3]
COMMON_LABELS = {"component", "subject", "episode_start"}
Seed = Callable[..., dict[str, Any]]


def _anomaly_alert() -> dict[str, Any]:
    harness = AnomalyHarness()
    records = [{"source": "web-01", "metric": "cpu", "ts": 1_700_000_000_000 + i * 60_000,
                "value": 50.0 + (i % 3) + (30.0 if i >= 300 else 0.0), "labels": {}}
               for i in range(320)]
    alerts = harness.batch(records).alerts
    assert alerts, "the shift fired"
    return alerts[0]


def test_an_alert_has_one_shape_whoever_raises_it(seed: Seed) -> None:
    schema = fastavro.parse_schema(json.loads(
        (ROOT / "schemas" / "alerts.notifications-value.avsc").read_text(encoding="utf-8")))
    update = parse_access_event(seed(event_type="posture_update"))
    anomaly, trust = _anomaly_alert(), revalidation_alert(update, "session store away")
    assert anomaly.keys() == trust.keys()
    for alert in (anomaly, trust):
        assert fastavro.validate(alert, schema)
        assert re.fullmatch(r"[0-9a-f]{32}", alert["fingerprint"])
        assert alert["labels"].keys() >= COMMON_LABELS
        assert alert["fingerprint"] == alerting.fingerprint(
            alert["source"], alert["labels"]["subject"], alert["kind"])
    assert (anomaly["labels"]["component"], trust["labels"]["component"]) == ("anomaly", "trust")
