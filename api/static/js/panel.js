// What every panel shares: its section, a message line for failures, and loading guarded
// so one failing store leaves the other panels working.

import { byTestId } from "./dom.js";
import { explain } from "./api.js";

export class Panel {
  constructor(root, api) {
    this.root = root;
    this.api = api;
    this.errorLine = byTestId(root, "panel-error");
  }

  /** Run `load`; a failure is shown on the panel (and returned as false). */
  async guard(load) {
    try {
      await load();
      this.showError(null);
      return true;
    } catch (error) {
      if (error.name === "AbortError") return false;
      this.showError(error);
      return false;
    }
  }

  /** What the page's timer calls: a fresh load, unless a panel knows better. */
  periodic() {
    return this.load();
  }

  showError(error) {
    if (!this.errorLine) return;
    this.errorLine.textContent = error ? explain(error) : "";
    this.errorLine.hidden = !error;
    if (error && error.status) this.errorLine.dataset.status = String(error.status);
    else delete this.errorLine.dataset.status;
  }

  part(id) {
    return byTestId(this.root, id);
  }
}

/** Severity order for sorting: critical first. */
export const SEVERITY_RANK = { critical: 0, error: 1, high: 1, warning: 2, medium: 2, info: 3, low: 3 };

export function severityRank(severity) {
  return SEVERITY_RANK[String(severity).toLowerCase()] ?? 4;
}

/** An ISO-8601 time `seconds` before now. */
export function secondsAgo(seconds) {
  return new Date(Date.now() - seconds * 1000).toISOString();
}
