// Access decisions: their rate by decision (stacked bars per time bucket), DENY reasons,
// revocations, and a live list (audit rows, then the live stream) filterable by user.

import { debounce, el, formatTime, replace, throttle, toMs } from "../dom.js";
import { horizontalBars, stackedBars } from "../charts/bars.js";
import { Panel, secondsAgo } from "../panel.js";

const OUTCOMES = ["ALLOW", "DENY", "CHALLENGE"];
const LISTED = 50;

export class DecisionsPanel extends Panel {
  constructor(root, api) {
    super(root, api);
    this.window = this.part("decisions-window");
    this.user = this.part("decisions-user");
    this.list = this.part("decisions-list");
    this.rows = [];
    this.window.addEventListener("change", () => this.loadSummary());
    this.user.addEventListener("input", debounce(() => this.loadList(), 300));
    this.refreshSummary = throttle(() => this.loadSummary(), 5000);
  }

  async load() {
    await Promise.all([this.loadSummary(), this.loadList()]);
  }

  async loadSummary() {
    await this.guard(async () => {
      const seconds = Number(this.window.value);
      const summary = await this.api.get("/decisions/summary",
        { since: secondsAgo(seconds), bucket_s: Math.max(60, Math.round(seconds / 30)) });
      const buckets = summary.buckets || [];
      replace(this.part("decisions-chart-area"), stackedBars({
        testid: "decisions-chart", label: "decisions per bucket",
        categories: buckets.map((b) => formatTime(b.ts)),
        stacks: OUTCOMES.map((d) => ({ name: d, className: `d-${d}`, values: buckets.map((b) => b[d] || 0) })),
      }));
      const reasons = (summary.deny_reasons || []).slice(0, 10);
      replace(this.part("deny-reasons-area"), reasons.length
        ? horizontalBars({ testid: "deny-reasons", label: "DENY reasons",
          items: reasons.map((r) => ({ label: r.reason, value: r.count, className: "d-DENY" })) })
        : el("p", { class: "empty", text: "no DENY in this window" }));
      this.part("revocations").textContent = String(summary.revocations ?? 0);
    });
  }

  async loadList() {
    await this.guard(async () => {
      const page = await this.api.get("/decisions", { user: this.user.value.trim(), limit: LISTED });
      this.rows = page.items;
      this.render();
    });
  }

  /** Live decision records (the user filter applied here: on the stream it would hold
   * back every other kind, which carries no user). */
  live(records) {
    const user = this.user.value.trim();
    const fresh = records.filter((r) => !user || r.user_id === user);
    if (!fresh.length) return;
    const known = new Set(this.rows.map((r) => r.decision_id));
    this.rows = [...fresh.reverse().filter((r) => !known.has(r.decision_id)), ...this.rows]
      .slice(0, LISTED);
    this.render();
    this.refreshSummary();
  }

  render() {
    const rows = this.rows.slice().sort((a, b) => toMs(b.ts) - toMs(a.ts));
    replace(this.list, ...rows.map((d) => el("li", {
      class: `row decision d-${d.decision}`, "data-testid": "decision-row",
      "data-decision": d.decision, "data-user": d.user_id, "data-decision-id": d.decision_id,
    }, [
      el("span", { class: "badge", text: d.decision }),
      el("span", { class: "user", text: d.user_id }),
      el("span", { class: "resource", text: `${d.action ?? ""} ${d.resource ?? ""}` }),
      el("span", { class: "summary", text: (d.reasons || []).join(", ") }),
      el("time", { text: formatTime(d.ts) }),
    ])));
    if (!rows.length) this.list.append(el("li", { class: "empty", text: "no decisions" }));
  }
}
