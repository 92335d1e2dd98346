// The in-page probe of `dharma bench page`, added before the page's own scripts run.
// It records main-thread long tasks (the Long Tasks API), where the time of long
// animation frames went (scripts, rendering: the Long Animation Frames API), the gaps
// between animation frames, the live badge's states, and times interactions: from the
// input event's own timestamp (so the time it waited behind other work counts) until
// the page shows the result and the frame that paints it has run.
(() => {
  const state = { longTasks: [], longFrames: [], gaps: [], lastFrame: null, liveStates: new Set() };
  let pending = null; // the interaction being timed
  let result = Promise.resolve(null); // what the last one showed

  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) state.longTasks.push(entry.duration);
  }).observe({ type: "longtask", buffered: true });

  new PerformanceObserver((list) => {
    for (const frame of list.getEntries()) {
      state.longFrames.push({
        ms: frame.duration,
        scriptMs: frame.scripts.reduce((sum, script) => sum + script.duration, 0),
        renderMs: frame.renderStart ? frame.startTime + frame.duration - frame.renderStart : 0,
      });
    }
  }).observe({ type: "long-animation-frame", buffered: true });

  // Timed when the callback runs, not by the frame's own timestamp: a frame held up by a
  // long task carries the time it was due, which would hide part of the wait.
  const onFrame = () => {
    const now = performance.now();
    if (state.lastFrame !== null) state.gaps.push(now - state.lastFrame);
    state.lastFrame = now;
    requestAnimationFrame(onFrame);
  };
  requestAnimationFrame(onFrame);

  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

  // What each interaction waits for, given what the bench expects to see.
  const shown = {
    search(prefix) {
      const rows = [...byTestId("series-list").querySelectorAll('[data-testid="series-row"]')];
      return rows.length > 0 && rows.every((row) => row.dataset.resource.startsWith(prefix));
    },
    series(title) {
      const area = byTestId("series-chart-area");
      const heading = area.querySelector('[data-testid="series-title"]');
      return Boolean(heading && heading.textContent === title
        && area.querySelector('[data-testid="series-chart"] [data-testid="chart-line"]'));
    },
    alert(before) {
      const child = byTestId("incident-detail").firstElementChild;
      return child !== before && ["incident-timeline", "incident-none"].includes(child?.dataset.testid);
    },
  };

  function watchLiveBadge() {
    const badge = byTestId("live-status");
    if (!badge) return;
    new MutationObserver(() => state.liveStates.add(badge.dataset.state))
      .observe(badge, { attributes: true, attributeFilter: ["data-state"] });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", watchLiveBadge);
  } else watchLiveBadge();

  // After the frame that paints the DOM as it is now.
  const afterNextPaint = () => new Promise((resolve) => {
    requestAnimationFrame(() => setTimeout(resolve, 0));
  });

  // Watches the DOM from `arm` on; resolves once the input has come and `kind` shows.
  function watch(resolve) {
    let done = false;
    const end = (outcome) => {
      done = true;
      observer.disconnect();
      clearTimeout(timer);
      pending = null;
      resolve(outcome);
    };
    const check = async () => {
      if (done || pending.start === null || !shown[pending.kind](pending.expected)) return;
      done = true;
      const { start, kind } = pending;
      await afterNextPaint();
      const child = byTestId("incident-detail").firstElementChild;
      end({ ms: performance.now() - start, detail: kind === "alert" ? child.dataset.testid : null });
    };
    const observer = new MutationObserver(check);
    observer.observe(document.body, { childList: true, subtree: true, characterData: true });
    const timer = setTimeout(() => { if (!done) end(null); }, pending.timeoutMs);
  }

  const startOf = (event) => {
    if (pending) pending.start = event.timeStamp;
  };
  for (const type of ["input", "click"]) document.addEventListener(type, startOf, true);

  window.__pageBench = {
    /** Forget what was recorded (a phase starts). */
    reset() {
      state.longTasks = [];
      state.longFrames = [];
      state.gaps = [];
      state.lastFrame = null;
      state.liveStates = new Set();
    },
    /** What was recorded since the last reset, and the page's own live counters. */
    figures() {
      const badge = byTestId("live-status");
      const counts = /live · (\d+) events(?: · (\d+) dropped)?/.exec(badge.textContent) || [];
      return {
        longTasks: state.longTasks, longFrames: state.longFrames, gaps: state.gaps, liveStates: [...state.liveStates],
        liveState: badge.dataset.state, received: Number(counts[1] || 0),
        dropped: Number(counts[2] || 0), heap: performance.memory?.usedJSHeapSize ?? null,
        alertsCount: byTestId("alerts-count").textContent,
        alertRows: document.querySelectorAll('[data-testid="alert-row"]').length,
        firstDecision: document.querySelector('[data-testid="decision-row"]')?.dataset.decisionId ?? null,
      };
    },
    /** Time the next input or click until `kind` shows `expected` (see `shown`):
     * `settle()` then resolves with {ms, detail}, or null if it did not show in time. */
    arm(kind, expected, timeoutMs) {
      if (kind === "alert") expected = byTestId("incident-detail").firstElementChild;
      pending = { kind, expected, timeoutMs, start: null };
      result = new Promise(watch);
    },
    settle() {
      return result;
    },
  };
})();
