// Pipeline health: consumer lag per topic, throughput over the last minutes (sampled
// here, one point per refresh), dead letters by reason, live subscribers.

import { el, replace } from "../dom.js";
import { horizontalBars } from "../charts/bars.js";
import { lineChart } from "../charts/line.js";
import { Panel } from "../panel.js";

const KEPT_SAMPLES = 120;

export class PipelinePanel extends Panel {
  constructor(root, api) {
    super(root, api);
    this.rates = new Map();
  }

  async load() {
    await this.guard(async () => {
      const health = await this.api.get("/pipeline/health");
      this.drawLag(health.topics || []);
      this.drawRates(health.rates || []);
      this.drawDeadLetters(health.dead_letters || []);
      const live = health.live || {};
      this.part("pipeline-live").textContent =
        `live subscribers ${live.subscribers ?? 0}, events dropped for slow subscribers ${live.dropped ?? 0}`;
    });
  }

  drawLag(topics) {
    const items = topics.map((t) => ({
      label: t.topic,
      value: t.partitions.reduce((sum, p) => sum + Object.values(p.lag || {})
        .reduce((a, b) => a + (Number(b) || 0), 0), 0),
    }));
    replace(this.part("pipeline-lag-area"), horizontalBars({ testid: "pipeline-lag", label: "consumer lag", items }));
  }

  drawRates(rates) {
    const now = Date.now();
    for (const { topic, per_s: perS } of rates) {
      if (!this.rates.has(topic)) this.rates.set(topic, []);
      const samples = this.rates.get(topic);
      samples.push({ x: now, y: perS });
      samples.splice(0, Math.max(0, samples.length - KEPT_SAMPLES));
    }
    const lines = [...this.rates].map(([topic, points], i) => ({ name: topic, className: `c${i % 8}`, points }));
    replace(this.part("pipeline-rates-area"),
      lineChart({ testid: "pipeline-rates", label: "events per second", height: 160, lines }),
      el("p", { class: "legend" }, lines.map((l) => el("span", { class: `key ${l.className}`, text: l.name }))));
  }

  drawDeadLetters(deadLetters) {
    replace(this.part("dead-letters-area"), deadLetters.length
      ? horizontalBars({ testid: "dead-letters", label: "dead letters",
        items: deadLetters.map((d) => ({ label: `${d.topic}: ${d.reason}`, value: d.count, className: "d-DENY" })) })
      : el("p", { class: "empty", "data-testid": "dead-letters-none", text: "no dead letters" }));
  }
}
