// The series explorer: a server-side search (q, anomalous, paged) so 10,000 series are
// never all rendered, and the chart of the chosen series: values, expected band,
// anomalies marked, warm-up shaded; live predictions extend it.

import { debounce, el, formatNumber, formatTime, replace, toMs } from "../dom.js";
import { lineChart } from "../charts/line.js";
import { Panel } from "../panel.js";

const PAGE = 50;
const POINTS_KEPT = 2000;

export class SeriesPanel extends Panel {
  constructor(root, api) {
    super(root, api);
    this.list = this.part("series-list");
    this.search = this.part("series-search");
    this.anomalous = this.part("series-anomalous");
    this.more = this.part("series-more");
    this.chartArea = this.part("series-chart-area");
    this.search.addEventListener("input", debounce(() => this.load(), 250));
    this.anomalous.addEventListener("change", () => this.load());
    this.more.addEventListener("click", () => this.loadMore());
    this.rows = new Map();
    this.next = null;
    this.selected = null;
    this.held = new Set();
    this.asked = 0; // pages asked for: only the latest answer is shown
  }

  filters() {
    return { q: this.search.value.trim(), anomalous: this.anomalous.checked ? "true" : "" };
  }

  /** The first page for the current filters: fetched first, then swapped in whole, so the
   * list never stands empty while it loads and an older answer never lands after a newer. */
  async load() {
    await this.page(null);
  }

  /** On the timer: the first page again, unless the reader has paged further. */
  periodic() {
    return this.list.children.length <= PAGE ? this.load() : null;
  }

  async loadMore() {
    if (this.next) await this.page(this.next);
  }

  async page(cursor) {
    const asked = ++this.asked;
    const fresh = cursor === null;
    await this.guard(async () => {
      const page = await this.api.get("/series", { ...this.filters(), limit: PAGE, cursor });
      if (asked !== this.asked) return; // a newer load or page was asked for meanwhile
      if (fresh) this.rows.clear();
      const rows = page.items.map((item) => {
        const row = this.row(item);
        this.rows.set(`${item.resource}\u0000${item.metric}`, row);
        return row;
      });
      if (fresh) replace(this.list, ...rows);
      else this.list.append(...rows);
      this.next = page.next;
      this.more.hidden = !page.next;
      if (!this.list.children.length) this.list.append(el("li", { class: "empty", text: "no series match" }));
    });
  }

  row(item) {
    return el("li", {
      class: `row series${item.anomalous ? " anomalous" : ""}`, "data-testid": "series-row",
      "data-series-id": item.series_id, "data-resource": item.resource, "data-metric": item.metric,
      "data-anomalous": String(Boolean(item.anomalous)), tabindex: 0,
      onclick: () => this.select(item.series_id),
      onkeydown: (e) => { if (e.key === "Enter") this.select(item.series_id); },
    }, [
      el("span", { class: "resource", text: item.resource }),
      el("span", { class: "metric", text: item.metric }),
      el("span", { class: "value", text: formatNumber(item.last_value) }),
      el("span", { class: "score", text: formatNumber(item.last_score) }),
      el("span", { class: "warm", text: item.warm ? "" : "warming up" }),
    ]);
  }

  async select(seriesId) {
    await this.guard(async () => {
      // every point the API holds: event time may run far behind the wall clock (replays)
      const series = await this.api.get(`/series/${encodeURIComponent(seriesId)}/points`);
      this.selected = series;
      this.held = new Set(series.points.map((p) => toMs(p.ts)));
      for (const row of this.list.children) {
        row.classList.toggle("selected", row.dataset.seriesId === seriesId);
      }
      this.draw();
    });
  }

  /** Live predictions: the chosen series grows; visible rows show their latest value. */
  live(records) {
    let grew = false;
    for (const p of records) {
      if (p.kind !== undefined && p.kind !== "anomaly") continue;
      const row = this.rows.get(`${p.source}\u0000${p.metric}`);
      if (row) {
        row.querySelector(".value").textContent = formatNumber(p.value);
        row.querySelector(".score").textContent = formatNumber(p.anomaly_score);
      }
      const s = this.selected;
      if (s && p.source === s.resource && p.metric === s.metric && !this.held.has(toMs(p.ts))) {
        this.held.add(toMs(p.ts)); // a point both read and streamed is drawn once
        s.points.push({ ts: p.ts, value: p.value, score: p.anomaly_score,
          expected: p.expected ?? null, lower: p.lower ?? null, upper: p.upper ?? null,
          anomaly: p.is_anomaly });
        if (s.warmup && p.warming_up === false) s.warmup.warm = true;
        grew = true;
      }
    }
    if (grew) {
      const gone = this.selected.points.splice(0, Math.max(0, this.selected.points.length - POINTS_KEPT));
      for (const p of gone) this.held.delete(toMs(p.ts));
      this.draw();
    }
  }

  draw() {
    const s = this.selected;
    const points = s.points.map((p) => ({ ...p, x: toMs(p.ts) }))
      .filter((p) => Number.isFinite(p.x)).sort((a, b) => a.x - b.x);
    const warmup = s.warmup || {};
    const anomalies = points.filter((p) => p.anomaly);
    const shade = warmupSpan(points, warmup);
    replace(this.chartArea,
      el("h3", { "data-testid": "series-title", text: `${s.resource} · ${s.metric}` }),
      el("p", { class: "meta", "data-testid": "series-warmup", "data-warm": String(Boolean(warmup.warm)),
        text: warmup.warm ? `warm (${warmup.seen} samples seen)`
          : `warming up: ${warmup.seen ?? 0} of ${warmup.needed ?? "?"} samples` }),
      lineChart({
        testid: "series-chart", label: `${s.resource} ${s.metric}`,
        lines: [{ name: "value", points: points.map((p) => ({ x: p.x, y: p.value })) },
          { name: "expected", className: "expected",
            points: points.map((p) => ({ x: p.x, y: p.expected ?? null })) }],
        band: points.map((p) => ({ x: p.x, lower: p.lower, upper: p.upper })),
        markers: anomalies.map((p) => ({ x: p.x, y: p.value,
          title: `anomaly at ${formatTime(p.x)}: ${formatNumber(p.value)} (score ${formatNumber(p.score)})` })),
        shade,
      }),
      lineChart({
        testid: "series-score-chart", label: "anomaly score", height: 90,
        lines: [{ name: "score", className: "score", points: points.map((p) => ({ x: p.x, y: p.score })) }],
      }),
      el("p", { class: "meta", "data-testid": "series-anomaly-count",
        text: `${anomalies.length} anomalies in ${points.length} points` }),
    );
  }
}

/** The span shaded as warm-up: the whole window while the detector is not yet warm
(the API tells how many samples it has seen, not where warm-up ended once it is over). */
function warmupSpan(points, { warm }) {
  if (warm || !points.length) return null;
  return { from: points[0].x, to: points[points.length - 1].x, label: "warming up" };
}
