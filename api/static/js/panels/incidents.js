// Incidents and the timeline of the selected one: root cause, guards, actions,
// verification, escalations, as the healing store recorded them.

import { el, formatTime, replace, throttle } from "../dom.js";
import { Panel } from "../panel.js";

const idOf = (incident) => incident.incident_id ?? incident.id;

export class IncidentsPanel extends Panel {
  constructor(root, api) {
    super(root, api);
    this.list = this.part("incidents-list");
    this.detail = this.part("incident-detail");
    this.status = this.part("incidents-status");
    this.status.addEventListener("change", () => this.load());
    this.selected = null;
    this.reload = throttle(() => this.refresh(), 1000);
  }

  async load() {
    await this.guard(async () => {
      const page = await this.api.get("/incidents", { status: this.status.value, limit: 50 });
      replace(this.list, ...page.items.map((i) => this.row(i)));
      if (!page.items.length) this.list.append(el("li", { class: "empty", text: "no incidents" }));
    });
  }

  async refresh() {
    await this.load();
    if (this.selected) await this.show(this.selected, false);
  }

  /** Live incident and remediation events: the list (and an open timeline) reloads. */
  live() {
    this.reload();
  }

  row(incident) {
    const id = idOf(incident);
    return el("li", {
      class: `row incident ${incident.status} sev-${String(incident.severity).toLowerCase()}`,
      "data-testid": "incident-row", "data-incident-id": id, "data-status": incident.status,
      tabindex: 0, onclick: () => this.show(id),
      onkeydown: (e) => { if (e.key === "Enter") this.show(id); },
    }, [
      el("span", { class: "badge", text: incident.severity }),
      el("span", { class: "status", text: incident.status }),
      el("span", { class: "resource", text: incident.root ?? incident.root_cause ?? "" }),
      el("span", { class: "summary", text: incident.title ?? incident.category ?? "" }),
      el("time", { text: formatTime(incident.opened_at ?? incident.ts) }),
    ]);
  }

  /** The most recent incident of `resource`, or a note that it has none yet. */
  async showForResource(resource) {
    await this.guard(async () => {
      const page = await this.api.get("/incidents", { resource, limit: 1 });
      if (page.items.length) await this.show(idOf(page.items[0]));
      else replace(this.detail, el("p", { "data-testid": "incident-none",
        text: `no incident recorded for ${resource} yet` }));
    });
  }

  async show(id, scroll = true) {
    this.selected = id;
    await this.guard(async () => {
      const incident = await this.api.get(`/incidents/${encodeURIComponent(id)}`);
      replace(this.detail, this.timeline(incident));
      if (scroll) this.root.scrollIntoView({ block: "nearest" });
    });
  }

  timeline(incident) {
    const entries = incident.timeline || [];
    return el("div", { "data-testid": "incident-timeline", "data-incident-id": idOf(incident) }, [
      el("h3", { text: `${incident.title ?? incident.category ?? "incident"} — ${incident.status}` }),
      el("p", { class: "meta", text: [
        (incident.root ?? incident.root_cause) && `root cause ${incident.root ?? incident.root_cause}`,
        incident.category, incident.severity,
        incident.confidence != null && `confidence ${Number(incident.confidence).toFixed(2)}`,
      ].filter(Boolean).join(" · ") }),
      el("ol", { class: "timeline" }, entries.map((entry) => el("li", {
        class: `entry kind-${entry.kind}`, "data-testid": "timeline-entry", "data-kind": entry.kind,
      }, [
        el("time", { text: formatTime(entry.ts) }),
        el("span", { class: "kind", text: entry.kind.replace("_", " ") }),
        el("span", { class: "summary", text: entry.summary ?? "", title: detailText(entry.detail) }),
      ]))),
    ]);
  }
}

/** An entry's recorded detail, shown on hover. */
function detailText(detail) {
  if (detail === null || detail === undefined || detail === "") return null;
  return typeof detail === "string" ? detail : JSON.stringify(detail, null, 1);
}
