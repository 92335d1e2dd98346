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


def _rows(page: Any, resource: str) -> int:
    return int(page.eval_on_selector_all(
        f'[data-testid="alert-row"][data-resource="{resource}"][data-status="firing"]',
        "rows => rows.length"))


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
        for n in range(SHOWN + 20):
            records.alert(flood, subject=f"m{n}")
        records.flush()
        poll(lambda: _rows(page, flood) == SHOWN, "the flood fills the panel")
        records.alert(late, ts=now_ms() - 3 * DAY_MS)
        records.flush()
        poll(lambda: _rows(page, late) == 1, "the late alert is listed",
             describe=lambda: page.inner_text('[data-testid="alerts-count"]'))
        page.screenshot(path=artifacts_dir() / "late-alert.png", full_page=True)
    finally:
        page.close()
