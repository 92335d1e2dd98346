"""The alerts panel in the browser: a notification that arrives now is listed at the top
of its severity even when its event time is old (a replay, a late producer) and more
alerts are firing than the panel shows."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from live_helpers import Records, now_ms
from page_support import artifacts_dir
from playwright.sync_api import Browser

from dharma.api.server import ApiServer

pytestmark = pytest.mark.integration

SHOWN = 100  # rows the panel lists (api/static/js/panels/alerts.js)
DAY_MS = 24 * 3600 * 1000


def _shown(page: Any) -> set[str]:
    return set(page.eval_on_selector_all('[data-testid="alert-row"]',
                                         "rows => rows.map(r => r.dataset.alertId)"))


def test_a_late_alert_is_listed_above_a_flood_of_current_ones(
        browser: Browser, api_server: ApiServer, admin_headers: dict[str, str],
        settings: Any, poll: Any) -> None:
    flood, late = f"flood-{uuid.uuid4().hex[:6]}", f"late-{uuid.uuid4().hex[:6]}"
    token = admin_headers["Authorization"].removeprefix("Bearer ")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{api_server.url}/#token={token}")
        page.wait_for_selector('[data-testid="live-status"][data-state="open"]')
        records = Records(settings)
        # critical, as the late one: an earlier test's critical alerts cannot crowd it out
        flooded = [records.alert(flood, subject=f"m{n}", severity="critical")
                   for n in range(SHOWN + 20)]
        records.flush()
        poll(lambda: flooded[-1]["alert_id"] in _shown(page), "the flood reaches the panel")
        sent = records.alert(late, severity="critical", ts=now_ms() - 3 * DAY_MS)
        records.flush()
        poll(lambda: sent["alert_id"] in _shown(page), "the late alert is listed",
             describe=lambda: page.inner_text('[data-testid="alerts-count"]'))
        page.screenshot(path=artifacts_dir() / "late-alert.png", full_page=True)
    finally:
        page.close()
