"""The page under the real access check: a refused token and a denied panel are
messages, not blank panels (needs the access slice's ``issue`` fixture)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from page_support import artifacts_dir
from playwright.sync_api import Browser

from dharma.api.server import ApiServer

pytestmark = pytest.mark.integration


def test_an_unknown_token_is_a_401_message_and_the_prompt(browser: Browser,
                                                          api_server: ApiServer) -> None:
    page = browser.new_page()
    page.goto(f"{api_server.url}/#token=not-a-token")
    page.wait_for_selector('[data-testid="message"][data-status="401"]')
    page.wait_for_selector('[data-testid="token-prompt"]', state="visible")
    assert page.evaluate("sessionStorage.getItem('dharma.token')") is None
    page.screenshot(path=artifacts_dir() / "refused-401.png", full_page=True)


def test_a_viewer_sees_why_decisions_are_denied(browser: Browser, api_server: ApiServer,
                                                issue: Callable[..., str]) -> None:
    page = browser.new_page()
    page.goto(f"{api_server.url}/#token={issue('viewer', user='page-viewer')}")
    page.wait_for_selector("body[data-ready=true]")
    decisions = page.locator('[data-testid="panel-decisions"] [data-testid="panel-error"]')
    assert decisions.get_attribute("data-status") == "403"
    assert "access denied (403)" in decisions.inner_text()
    alerts = page.locator('[data-testid="panel-alerts"] [data-testid="panel-error"]')
    assert alerts.is_hidden(), alerts.inner_text()
    page.wait_for_selector('[data-testid="live-status"][data-state="open"]')
    page.screenshot(path=artifacts_dir() / "viewer-403.png", full_page=True)
