"""``dharma bench page``: the live page's responsiveness in real chromium, with 10,000
series in the API's views, idle and with 100 events/s arriving.

On a private embedded stack the API runs as ``dharma api serve`` in a process of its
own and its stores are filled as ``dharma bench api`` fills them
(:func:`dharma.bench.api.seed`: series, alerts, incidents, access decisions).  Debian's
chromium, driven by Playwright, opens the page with an admin token.  Then, on that one
page and server, phase after phase:

1. **idle**: nothing arrives;
2. **loaded**: ``rate`` records/s on the topics the page shows live
   (:mod:`dharma.bench.page_load`: anomaly scores of the 10,000 series, alerts, access
   decisions), which the API's feed streams to the page;
3. **high** (unless ``high_rate`` is 0): the same at ``high_rate``, to show where the
   page stops keeping up.

Each phase is watched for ``watch_seconds``, then the interactions of
:mod:`dharma.bench.page_actions` run ``repeats`` times each, the load still flowing.
Measured inside the page (``page_probe.js``) over the whole phase: main-thread long
tasks (over 50 ms; count and total per minute) and long animation frames (their script
and rendering time), gaps between animation frames, each interaction's latency, the JS
heap at the start and end, and whether the live stream stayed open and its events were
applied (events received, alerts listed, the newest decision changed); from Chromium's
CPU profiler (:mod:`dharma.bench.page_profile`), the main thread's time split between
idle, scripts, native work and GC.  Timings are this machine's.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from dharma.bench.api import INCIDENTS, seed, start_api
from dharma.bench.api_load import percentiles
from dharma.bench.api_seed import series_source
from dharma.bench.api_tokens import admin_token
from dharma.bench.harness import bench_stack, stop
from dharma.bench.page_actions import (
    INTERACTIONS,
    SEARCH_DEBOUNCE_MS,
    interact,
    search_queries,
)
from dharma.bench.page_load import PageLoad
from dharma.bench.page_profile import cpu_profile
from dharma.streams.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

__all__ = ["Sizes", "measure", "run"]

PROBE = Path(__file__).with_name("page_probe.js")
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
MB = 1024 * 1024
LABELS = {"search": f"search → rows (incl. {SEARCH_DEBOUNCE_MS} ms debounce)",
          "series": "series click → chart", "alert": "alert click → timeline"}


@dataclass(frozen=True)
class Sizes:
    """What one run stores, sends and times (the command's options)."""

    series: int = 10_000
    points: int = 20
    decisions: int = 10_000
    rate: int = 100
    #: Records/s of the third phase; 0: no third phase.
    high_rate: int = 1_000
    watch_seconds: float = 30.0
    repeats: int = 20
    seed: int = 16

    def phases(self) -> list[tuple[str, int]]:
        """Each phase's name and records/s."""
        return [("idle", 0), ("loaded", self.rate),
                *([("high", self.high_rate)] if self.high_rate else [])]


def chromium_path() -> str:
    """Debian's chromium, and Playwright to drive it, or a RuntimeError saying what to
    install."""
    try:
        import playwright.sync_api  # noqa: F401  (a dev dependency: only this bench needs it)
    except ImportError as missing:
        raise RuntimeError("playwright is not installed: it is a dev dependency "
                           "(pip install -e '.[dev]', as `make install` does)") from missing
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("chromium is not installed: `make browser` installs Debian's "
                           "chromium package")
    return path


@contextmanager
def _browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: chromium's sandbox cannot start as root (CI containers);
        # precise memory info: performance.memory unrounded
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True,
            args=["--no-sandbox", "--enable-precise-memory-info"])
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Browser, url: str, token: str) -> Page:
    """The page with its token and the probe, once it has loaded and its stream is open."""
    page = browser.new_page(viewport=VIEWPORT)
    page.add_init_script(path=PROBE)
    page.goto(f"{url}/#token={token}")
    page.wait_for_selector('body[data-ready="true"]', timeout=60_000)
    page.wait_for_selector('[data-testid="live-status"][data-state="open"]', timeout=60_000)
    return page


def _figures(page: Page) -> dict[str, Any]:
    figures: dict[str, Any] = page.evaluate("() => window.__pageBench.figures()")
    return figures


def _interaction(outcomes: list[dict[str, Any] | None]) -> dict[str, Any]:
    shown = [o["ms"] for o in outcomes if o is not None]
    return {"shown": len(shown), "of": len(outcomes), **percentiles(shown)}


def _main_thread(after: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Long tasks, long animation frames (where their time went) and frame gaps."""
    tasks, frames, minutes = after["longTasks"], after["longFrames"], seconds / 60
    gaps = percentiles(after["gaps"])
    return {
        "long_tasks": {"per_min": round(len(tasks) / minutes, 1),
                       "ms_per_min": round(sum(tasks) / minutes),
                       "max_ms": round(max(tasks, default=0.0), 1)},
        "long_frames": {"per_min": round(len(frames) / minutes, 1),
                        "script_ms_per_min": round(sum(f["scriptMs"] for f in frames) / minutes),
                        "render_ms_per_min": round(sum(f["renderMs"] for f in frames) / minutes)},
        "frames": {"per_s": round(len(after["gaps"]) / seconds, 1),
                   **{f"gap_{stat}": gaps[stat] for stat in ("p50_ms", "p99_ms", "max_ms")}},
    }


def _applied(before: dict[str, Any], after: dict[str, Any], sent: Counter[str],
             seconds: float) -> dict[str, Any]:
    """What arrived, and whether the page kept its stream open and applied it."""
    received = after["received"] - before["received"]
    return {"sent": sum(sent.values()), "sent_by_kind": dict(sent), "received": received,
            "received_per_s": round(received / seconds, 1),
            "dropped": after["dropped"] - before["dropped"],
            "live_open": after["liveState"] == "open" and set(after["liveStates"]) <= {"open"},
            "alert_rows": after["alertRows"], "alerts_count": after["alertsCount"],
            "newest_decision_changed": after["firstDecision"] != before["firstDecision"]}


def summarise(rate: int, before: dict[str, Any], after: dict[str, Any],
              outcomes: dict[str, list[dict[str, Any] | None]], sent: Counter[str],
              seconds: float) -> dict[str, Any]:
    """One phase's figures from the probe's readings at its start and end."""
    heap = {key: round(value["heap"] / MB, 1) if value["heap"] else None
            for key, value in (("start", before), ("end", after))}
    return {"rate": rate, "seconds": round(seconds, 1),
            "events": _applied(before, after, sent, seconds), **_main_thread(after, seconds),
            **{kind: _interaction(outcomes[kind]) for kind in INTERACTIONS},
            "alert_timelines": sum(1 for o in outcomes["alert"]
                                   if o and o["detail"] == "incident-timeline"),
            "heap_mb": heap}


#: The printed table: a label and where its figure is in a phase.
TABLE: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("records sent /s", lambda p: round(p["events"]["sent"] / p["seconds"], 1)),
    ("events received /s by the page", lambda p: p["events"]["received_per_s"]),
    ("dropped by the page", lambda p: p["events"]["dropped"]),
    ("live stream stayed open", lambda p: p["events"]["live_open"]),
    ("alerts listed", lambda p: p["events"]["alerts_count"]),
    ("newest decision changed", lambda p: p["events"]["newest_decision_changed"]),
    ("long tasks /min", lambda p: p["long_tasks"]["per_min"]),
    ("long-task ms /min", lambda p: p["long_tasks"]["ms_per_min"]),
    ("longest task ms", lambda p: p["long_tasks"]["max_ms"]),
    ("long frames /min", lambda p: p["long_frames"]["per_min"]),
    ("  their script ms /min", lambda p: p["long_frames"]["script_ms_per_min"]),
    ("  their rendering ms /min", lambda p: p["long_frames"]["render_ms_per_min"]),
    ("main thread idle / script / native / GC %", lambda p: " / ".join(
        str(p["main_thread"][f"{state}_pct"]) for state in ("idle", "script", "native", "gc"))),
    ("frames /s", lambda p: p["frames"]["per_s"]),
    ("frame gap p50 / p99 / max ms", lambda p: " / ".join(
        str(p["frames"][f"gap_{stat}"]) for stat in ("p50_ms", "p99_ms", "max_ms"))),
    *((f"{label} p50 / p99 ms", lambda p, kind=kind: f"{p[kind]['p50_ms']} / {p[kind]['p99_ms']}")
      for kind, label in LABELS.items()),
    *((f"{label} shown", lambda p, kind=kind: f"{p[kind]['shown']}/{p[kind]['of']}")
      for kind, label in LABELS.items()),
    ("alert clicks that opened a timeline", lambda p: p["alert_timelines"]),
    ("JS heap MB start → end", lambda p: f"{p['heap_mb']['start']} → {p['heap_mb']['end']}"),
)


def table(phases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The phases side by side: one row per figure, one column per phase."""
    return [{"figure": label, **{name: figure(p) for name, p in phases.items()}}
            for label, figure in TABLE]


def _phase(page: Page, load: PageLoad, rate: int, rounds: range,
           queries: list[str], roots: frozenset[str], watch_seconds: float) -> dict[str, Any]:
    page.evaluate("() => window.__pageBench.reset()")
    before, started = _figures(page), time.monotonic()
    main_thread: dict[str, Any] = {}
    with load.flowing(rate) as sent, cpu_profile(page, main_thread):
        page.wait_for_timeout(watch_seconds * 1000)  # the measuring window: load, no input
        outcomes = interact(page, rounds, queries, roots)
        after, seconds = _figures(page), time.monotonic() - started
    return {**summarise(rate, before, after, outcomes, sent, seconds),
            "main_thread": main_thread}


def measure(settings: Settings, env: dict[str, str], logdir: Path,
            sizes: Sizes = Sizes()) -> dict[str, Any]:  # frozen: a safe default
    """Every figure of the bench on the stack of ``settings`` (environment ``env``); the
    API's output in ``logdir``."""
    z = sizes
    if z.series < 80:
        raise ValueError("at least 80 series: the searches need two host prefixes of ten hosts")
    api, url = start_api(env, logdir / "api.log")
    try:
        token = admin_token(settings)
        with httpx.Client(base_url=url, timeout=60,
                          headers={"authorization": f"Bearer {token}"}) as client:
            stored = seed(settings, client, z.series, z.points, z.decisions, z.seed,
                          int(time.time() * 1000))
        stored.pop("series_ids")
        roots = frozenset(series_source(4 * i) for i in range(INCIDENTS))
        load = PageLoad(settings, z.series, alert_sources=INCIDENTS, seed=z.seed)
        queries = search_queries(z.series)
        with _browser() as browser:
            page = open_page(browser, url, token)
            phases = {name: _phase(page, load, rate, range(n * z.repeats, (n + 1) * z.repeats),
                                   queries, roots, z.watch_seconds)
                      for n, (name, rate) in enumerate(z.phases())}
    finally:
        stop(api)
    return {"sizes": asdict(z), "seed": stored, "page": table(phases), "phases": phases,
            "logs": str(logdir)}


def run(sizes: Sizes) -> dict[str, Any]:
    """:func:`measure` on a private embedded stack (chromium checked first)."""
    chromium_path()
    logdir = Path(tempfile.mkdtemp(prefix="dharma-bench-page-"))
    with bench_stack() as (settings, env):
        return measure(settings, env, logdir, sizes)
