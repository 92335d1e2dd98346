"""The interactions ``dharma bench page`` times, each through Playwright's real input
(keys and mouse clicks sent to chromium as a user's are) and timed inside the page by
its probe (``page_probe.js``): from the input event's own timestamp until the result
shows and the frame that paints it has run.

- **search**: a query typed into the series search (keys over the selected text),
  until every row listed matches it; the page waits for typing to pause (its 250 ms
  debounce) before it asks the server, so that wait is part of every figure;
- **series**: a click on a listed series, until the chart of that series is drawn;
- **alert**: a click on an alert of a resource that has incidents, until the incident
  panel shows its timeline (or says it has none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["INTERACTIONS", "SEARCH_DEBOUNCE_MS", "interact", "search_queries"]

#: The series search's debounce (api/static/js/panels/series.js).
SEARCH_DEBOUNCE_MS = 250
#: Longer than any interaction may take: it then counts as not shown.
TIMEOUT_MS = 15_000
#: Alert rows considered for a click: the top of the list, where a user looks.
ALERT_ROWS = 20
INTERACTIONS = ("search", "series", "alert")
#: Rows of a list, as their data attributes.
Rows = list[dict[str, str]]
#: The centre of a row, scrolled into view: where a user would click it.
_ON_SCREEN = """([testid, index]) => {
  const row = document.querySelectorAll(`[data-testid="${testid}"]`)[index];
  if (!row) return null;
  row.scrollIntoView({ block: "nearest" });
  const box = row.getBoundingClientRect();
  return { x: box.left + box.width / 2, y: box.top + box.height / 2 };
}"""


def search_queries(series: int, hosts_per_query: int = 10) -> list[str]:
    """Host prefixes of the seeded series matching ``hosts_per_query`` hosts each (four
    series a host): one query's rows never match another's.

    >>> search_queries(200)
    ['host-0000', 'host-0001', 'host-0002', 'host-0003', 'host-0004']
    >>> len(search_queries(10_000))
    250
    """
    return [f"host-{h:04d}" for h in range(series // 4 // hosts_per_query)]


def _timed(page: Page, kind: str, expected: str | None, act: Callable[[], None]
           ) -> dict[str, Any] | None:
    page.evaluate("([k, e, t]) => window.__pageBench.arm(k, e, t)", [kind, expected, TIMEOUT_MS])
    act()
    result: dict[str, Any] | None = page.evaluate("() => window.__pageBench.settle()")
    return result


def _search(page: Page, query: str) -> dict[str, Any] | None:
    box = page.get_by_test_id("series-search")

    def type_query() -> None:
        box.select_text()
        box.press_sequentially(query)

    return _timed(page, "search", query, type_query)


def _click_row(page: Page, kind: str, testid: str, pick: Callable[[Rows], int | None],
               expected: Callable[[dict[str, str]], str | None]) -> dict[str, Any] | None:
    """Click the row ``pick`` chooses among the rows ``testid`` lists (their data
    attributes), where it is on screen now (a live list may re-render under a held
    element: the click lands on whatever row is there, as a user's would)."""
    rows: Rows = page.eval_on_selector_all(
        f'[data-testid="{testid}"]', "rows => rows.map(r => ({...r.dataset}))")
    index = pick(rows)
    if index is None:
        return None
    box: dict[str, float] | None = page.evaluate(_ON_SCREEN, [testid, index])
    if box is None:
        return None
    return _timed(page, kind, expected(rows[index]),
                  lambda: page.mouse.click(box["x"], box["y"]))


def _select_series(page: Page, k: int) -> dict[str, Any] | None:
    return _click_row(page, "series", "series-row",
                      lambda rows: k % len(rows) if rows else None,
                      lambda row: f"{row['resource']} · {row['metric']}")


def _click_alert(page: Page, k: int, roots: frozenset[str]) -> dict[str, Any] | None:
    def pick(rows: Rows) -> int | None:
        with_incident = [i for i, row in enumerate(rows[:ALERT_ROWS]) if row["resource"] in roots]
        return with_incident[k % len(with_incident)] if with_incident else None

    return _click_row(page, "alert", "alert-row", pick, lambda row: None)


def interact(page: Page, rounds: range, queries: list[str], roots: frozenset[str]
             ) -> dict[str, list[dict[str, Any] | None]]:
    """The three interactions, once per round of ``rounds`` (consecutive rounds search
    consecutive ``queries`` and click other rows); each one's outcomes (None: its
    result did not show within :data:`TIMEOUT_MS`)."""
    outcomes: dict[str, list[dict[str, Any] | None]] = {kind: [] for kind in INTERACTIONS}
    for k in rounds:
        outcomes["search"].append(_search(page, queries[k % len(queries)]))
        outcomes["series"].append(_select_series(page, k))
        outcomes["alert"].append(_click_alert(page, k, roots))
    return outcomes
