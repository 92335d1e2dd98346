// Live alerts: the current state of each alert (REST, then the live stream), firing
// first, then by severity, then most recently notified first; coloured by severity; a
// click opens the incident of the alert's resource.
//
// Recency is the order notifications reach the page, not their event time: a replayed
// or late alert carries an old `ts` and would otherwise sort below every current one,
// past the rows shown, while it is the news.

import { el, formatTime, replace, toMs } from "../dom.js";
import { Panel, severityRank } from "../panel.js";

const SHOWN = 100;
const KEPT = 2000;

export class AlertsPanel extends Panel {
  constructor(root, api, { onSelect }) {
    super(root, api);
    this.onSelect = onSelect;
    this.alerts = new Map();
    this.arrivals = 0; // a notification's rank in arrival order
    this.list = this.part("alerts-list");
  }

  async load() {
    await this.guard(async () => {
      const page = await this.api.get("/alerts", { limit: 200 });
      for (const alert of page.items.reverse()) this.upsert(alert); // newest last
      this.render();
    });
  }

  /** Live `alert` records, oldest first. */
  live(records) {
    for (const record of records) this.upsert(record);
    this.render();
  }

  upsert(alert) {
    const key = alert.fingerprint || alert.alert_id;
    const known = this.alerts.get(key);
    const ts = toMs(alert.ts);
    if (known && toMs(known.ts) > ts) return; // an older record arriving late
    this.alerts.delete(key); // re-inserted: the map stays in arrival order
    this.alerts.set(key, {
      ...alert,
      first_seen: known ? known.first_seen : alert.first_seen ?? alert.ts,
      last_seen: alert.last_seen ?? alert.ts,
      arrival: ++this.arrivals,
    });
    if (this.alerts.size > KEPT) this.forgetOldestResolved();
  }

  forgetOldestResolved() {
    for (const [key, alert] of this.alerts) {
      if (alert.status !== "firing" || this.alerts.size > KEPT * 2) {
        this.alerts.delete(key);
        if (this.alerts.size <= KEPT) return;
      }
    }
  }

  render() {
    const rows = [...this.alerts.values()].sort((a, b) =>
      (a.status === "firing" ? 0 : 1) - (b.status === "firing" ? 0 : 1)
      || severityRank(a.severity) - severityRank(b.severity) || b.arrival - a.arrival);
    const firing = rows.filter((a) => a.status === "firing").length;
    this.part("alerts-count").textContent = `${firing} firing, ${rows.length - firing} resolved`;
    replace(this.list, ...rows.slice(0, SHOWN).map((a) => this.row(a)));
    if (!rows.length) this.list.append(el("li", { class: "empty", text: "no alerts" }));
  }

  row(alert) {
    const resource = alert.resource ?? alert.source;
    return el("li", {
      class: `row alert ${alert.status} sev-${String(alert.severity).toLowerCase()}`,
      "data-testid": "alert-row", "data-status": alert.status, "data-severity": alert.severity,
      "data-resource": resource, "data-alert-id": alert.alert_id, tabindex: 0, title: alert.description ?? "",
      onclick: () => this.onSelect(alert),
      onkeydown: (e) => { if (e.key === "Enter") this.onSelect(alert); },
    }, [
      el("span", { class: "badge", text: alert.severity }),
      el("span", { class: "status", text: alert.status }),
      el("span", { class: "resource", text: resource }),
      el("span", { class: "summary", text: alert.title ?? alert.summary ?? "" }),
      el("time", { text: formatTime(alert.last_seen ?? alert.ts) }),
    ]);
  }
}
