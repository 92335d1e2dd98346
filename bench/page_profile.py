"""Where the page's main thread spends a phase, from Chromium's sampling CPU profiler
(the DevTools protocol's ``Profiler`` domain, one sample a millisecond).

Each sample is the function running when it was taken: ``(idle)`` (waiting for work),
``(garbage collector)``, ``(program)`` (the browser's own native work on that thread:
style, layout, paint, parsing, reading the network) or a JavaScript function (the page's
scripts, and the built-ins they call).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["cpu_profile", "main_thread_split"]

_STATES = {"(idle)": "idle", "(program)": "native", "(garbage collector)": "gc"}
TOP_SCRIPTS = 5


def _function(frame: dict[str, Any]) -> str:
    name = frame["functionName"] or "(anonymous)"
    url = frame["url"].rsplit("/", 1)[-1]
    return f"{name} {url}:{frame['lineNumber'] + 1}" if url else name


def main_thread_split(profile: dict[str, Any]) -> dict[str, Any]:
    """Percent of the profiled time idle, in scripts, in native work and in GC, and the
    scripts that took most of it (ms, their own time).

    >>> node = lambda i, name, url="": {"id": i, "callFrame": {
    ...     "functionName": name, "url": url, "lineNumber": 9}}
    >>> main_thread_split({"nodes": [node(1, "(idle)"), node(2, "render", "/js/a.js"),
    ...                              node(3, "(program)")],
    ...                    "samples": [1, 2, 3, 1], "timeDeltas": [0, 5000, 3000, 2000]})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'idle_pct': 50.0, 'script_pct': 30.0, 'native_pct': 20.0, 'gc_pct': 0.0,
     'top_scripts_ms': {'render a.js:10': 3.0}}
    """
    frames = {node["id"]: node["callFrame"] for node in profile["nodes"]}
    # timeDeltas[i]: from sample i - 1 to sample i; a sample lasts until the next one
    spans = profile["timeDeltas"][1:]
    by_state: Counter[str] = Counter()
    by_script: Counter[str] = Counter()
    for sample, span_us in zip(profile["samples"], spans, strict=False):
        frame = frames[sample]
        state = _STATES.get(frame["functionName"], "script")
        by_state[state] += span_us
        if state == "script":
            by_script[_function(frame)] += span_us
    total = sum(by_state.values()) or 1
    return {**{f"{state}_pct": round(100 * by_state[state] / total, 1)
               for state in ("idle", "script", "native", "gc")},
            "top_scripts_ms": {name: round(us / 1000, 1)
                               for name, us in by_script.most_common(TOP_SCRIPTS)}}


@contextmanager
def cpu_profile(page: Page, into: dict[str, Any]) -> Iterator[None]:
    """Profile the page's main thread over the block; its split in ``into``."""
    session = page.context.new_cdp_session(page)
    session.send("Profiler.enable")
    session.send("Profiler.start")
    try:
        yield
    finally:
        profile = session.send("Profiler.stop")["profile"]
        session.detach()
        into.update(main_thread_split(profile))
