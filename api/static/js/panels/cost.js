// Cost: daily cost by team (stacked bars), the forecast of a scope with its band, and
// each budget as a bar of actual and forecast against the budget line.

import { el, formatNumber, replace, toMs } from "../dom.js";
import { stackedBars } from "../charts/bars.js";
import { lineChart } from "../charts/line.js";
import { Panel, secondsAgo } from "../panel.js";

/** A day (epoch ms or ISO date) as MM-DD. */
const dayLabel = (day) => new Date(toMs(day)).toISOString().slice(5, 10);

export class CostPanel extends Panel {
  constructor(root, api) {
    super(root, api);
    this.scope = this.part("cost-scope");
    this.scope.addEventListener("change", () => this.drawForecast());
    this.forecasts = [];
    this.history = new Map();
  }

  async load() {
    await this.guard(async () => {
      const [teams, forecasts, budgets] = await Promise.all([
        this.api.get("/cost/teams", { since: secondsAgo(30 * 86_400) }),
        this.api.get("/cost/forecasts", { limit: 100 }),
        this.api.get("/cost/budgets", { limit: 100 }),
      ]);
      this.drawTeams(teams);
      this.forecasts = forecasts.items;
      this.fillScopes();
      this.drawForecast();
      this.drawBudgets(budgets.items, teams.currency);
    });
  }

  drawTeams({ currency, teams }) {
    const days = [...new Set(teams.flatMap((t) => t.days.map((d) => d.day)))]
      .sort((a, b) => toMs(a) - toMs(b));
    this.history = new Map(teams.map((t) => [t.team, t.days]));
    replace(this.part("cost-teams-area"), days.length ? stackedBars({
      testid: "cost-teams-chart", label: `daily cost by team (${currency})`,
      categories: days.map(dayLabel),
      stacks: teams.map((t, i) => {
        const byDay = new Map(t.days.map((d) => [d.day, d.cost]));
        return { name: t.team, className: `c${i % 8}`, values: days.map((d) => byDay.get(d) || 0) };
      }),
    }) : el("p", { class: "empty", text: "no cost recorded in the last 30 days" }),
    el("p", { class: "legend" }, teams.map((t, i) => el("span", { class: `key c${i % 8}`, text: t.team }))));
  }

  fillScopes() {
    const current = this.scope.value;
    replace(this.scope, ...this.forecasts.map((f) => el("option", { value: f.scope, text: f.scope })));
    if (this.forecasts.some((f) => f.scope === current)) this.scope.value = current;
  }

  drawForecast() {
    const forecast = this.forecasts.find((f) => f.scope === this.scope.value);
    if (!forecast) {
      replace(this.part("cost-forecast-area"), el("p", { class: "empty", text: "no forecast yet" }));
      return;
    }
    const past = this.actual(forecast.scope);
    const ahead = forecast.points.map((p) => ({ x: toMs(p.day), mean: p.mean, lower: p.lower, upper: p.upper }));
    replace(this.part("cost-forecast-area"), lineChart({
      testid: "cost-forecast-chart", label: `forecast of ${forecast.scope}`,
      xFormat: dayLabel,
      lines: [{ name: "actual", points: past },
        { name: "forecast", className: "forecast", points: ahead.map((p) => ({ x: p.x, y: p.mean })) }],
      band: ahead,
    }));
  }

  /** Daily spend of `scope`: a team's, or the estate's (`*`) summed over teams. */
  actual(scope) {
    const days = scope === "*" ? [...this.history.values()].flat() : this.history.get(scope) || [];
    const byDay = new Map();
    for (const d of days) byDay.set(toMs(d.day), (byDay.get(toMs(d.day)) || 0) + d.cost);
    return [...byDay].sort((a, b) => a[0] - b[0]).map(([x, y]) => ({ x, y }));
  }

  drawBudgets(budgets, currency) {
    replace(this.part("cost-budgets-area"), ...budgets.map((b) => budgetBar(b, currency)));
    if (!budgets.length) this.part("cost-budgets-area").append(el("p", { class: "empty", text: "no budgets set" }));
  }
}

function budgetBar(budget, currency) {
  const top = Math.max(budget.amount || 0, budget.actual || 0, budget.forecast || 0, 1) * 1.1;
  const pct = (v) => `${Math.min(100, (100 * (v || 0)) / top).toFixed(1)}%`;
  const over = (budget.forecast || budget.actual || 0) > budget.amount;
  return el("div", { class: `budget${over ? " over" : ""}`, "data-testid": "budget",
    "data-scope": budget.scope }, [
    el("span", { class: "label", text: `${budget.scope} ${budget.month ?? ""}` }),
    el("div", { class: "track" }, [
      el("div", { class: "forecast", style: `width:${pct(budget.forecast)}` }),
      el("div", { class: "actual", style: `width:${pct(budget.actual)}` }),
      el("div", { class: "limit", "data-testid": "budget-line", style: `left:${pct(budget.amount)}` }),
    ]),
    el("span", { class: "figures", text: `${formatNumber(budget.actual)} / ${formatNumber(budget.amount)} ${currency ?? ""}`
      + (budget.forecast != null ? ` (forecast ${formatNumber(budget.forecast)})` : "") }),
  ]);
}
