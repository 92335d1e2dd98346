// The page: a token, the panels, their refresh timers and the live stream feeding them.

import { ApiClient, explain } from "./api.js";
import { byTestId } from "./dom.js";
import { LiveStream } from "./live.js";
import { forgetToken, storeToken, takeToken } from "./token.js";
import { AlertsPanel } from "./panels/alerts.js";
import { CmdbPanel } from "./panels/cmdb.js";
import { CostPanel } from "./panels/cost.js";
import { DecisionsPanel } from "./panels/decisions.js";
import { IncidentsPanel } from "./panels/incidents.js";
import { PipelinePanel } from "./panels/pipeline.js";
import { SeriesPanel } from "./panels/series.js";

const REFRESH_S = { pipeline: 5, incidents: 15, decisions: 15, series: 30, alerts: 60, cmdb: 60,
  cost: 120 };

const part = (id) => byTestId(document, id);

function showMessage(text, status = "") {
  const line = part("message");
  line.textContent = text;
  line.dataset.status = String(status);
  line.hidden = !text;
}

/** Ask for a token; resolves once one is given. */
function promptForToken() {
  const form = part("token-prompt");
  form.hidden = false;
  return new Promise((resolve) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = part("token-input").value.trim();
      if (!token) return;
      storeToken(token);
      form.hidden = true;
      resolve(token);
    }, { once: true });
  });
}

function refused(error) {
  showMessage(explain(error), error.status);
  if (error.status === 401) {
    forgetToken();
    part("token-prompt").hidden = false;
  }
}

function panels(api) {
  const section = (name) => part(`panel-${name}`);
  const incidents = new IncidentsPanel(section("incidents"), api);
  const alerts = new AlertsPanel(section("alerts"), api,
    { onSelect: (alert) => incidents.showForResource(alert.resource ?? alert.source) });
  const decisions = new DecisionsPanel(section("decisions"), api);
  return { alerts, incidents, decisions, series: new SeriesPanel(section("series"), api),
    cmdb: new CmdbPanel(section("cmdb"), api), cost: new CostPanel(section("cost"), api),
    pipeline: new PipelinePanel(section("pipeline"), api) };
}

function connect(live, all) {
  live.on("alert", (records) => all.alerts.live(records));
  live.on("incident", () => all.incidents.live());
  live.on("remediation", () => all.incidents.live());
  live.on("decision", (records) => all.decisions.live(records));
  live.on("prediction", (records) => all.series.live(records));
  live.start();
}

function liveStatus(live) {
  return (state, error) => {
    const badge = part("live-status");
    badge.dataset.state = state;
    badge.textContent = state === "open"
      ? `live · ${live.received} events${live.dropped ? ` · ${live.dropped} dropped` : ""}`
      : state === "retrying" ? `live: reconnecting (${explain(error)})` : "live: connecting";
  };
}

async function main() {
  let token = takeToken();
  if (!token) token = await promptForToken();
  const api = new ApiClient(() => token, "/api/v1", refused);
  part("token-prompt").addEventListener("submit", (event) => {
    event.preventDefault();
    token = part("token-input").value.trim() || token;
    storeToken(token);
    part("token-prompt").hidden = true;
    showMessage("");
    for (const panel of Object.values(all)) panel.load();
    live.start();
  });
  // no kinds asked: the stream carries every kind the token may see
  const live = new LiveStream(api, { bufferSize: 2000 });
  const all = panels(api);
  live.onStatus = liveStatus(live);
  connect(live, all);
  await Promise.all(Object.values(all).map((panel) => panel.load()));
  for (const [name, seconds] of Object.entries(REFRESH_S)) {
    setInterval(() => { if (!document.hidden) all[name].periodic(); }, seconds * 1000);
  }
  document.body.dataset.ready = "true";
}

main();
