"""`dharma up`'s live view shows the healing loop, and prints what topics carry as
text: a title or reason holding rich markup never breaks the view."""

from __future__ import annotations

import pytest

from dharma.cli.up import _show


def test_the_loop_is_shown_with_mttr_and_guards(capsys: pytest.CaptureFixture[str]) -> None:
    _show("infrastructure.events", {
        "type": "incident", "resource_id": "web-server-01", "attributes": {
            "incident_id": "inc-1", "status": "resolved", "root_cause": "web-server-01",
            "category": "memory_leak", "confidence": 0.99, "mttr_ms": 125_000,
            "title": "High Memory Usage on web-server-01 [/] [bold]"}})
    _show("infrastructure.events", {
        "type": "remediation", "resource_id": "web-server-02", "attributes": {
            "status": "skipped", "action": "restart_service", "guard": "circuit_breaker",
            "reason": "6 of 10 unhealthy [/red]"}})
    out = " ".join(capsys.readouterr().out.split())
    assert "incident resolved inc-1 root web-server-01: memory_leak (0.99)" in out
    assert "[/] [bold], MTTR 2.1 min" in out
    assert "remediation skipped restart_service on web-server-02 (guard circuit_breaker): " \
           "6 of 10 unhealthy [/red]" in out
