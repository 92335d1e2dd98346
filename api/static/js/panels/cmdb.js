// The CMDB: find an asset, and draw the blast radius of the selected one as a graph.

import { debounce, el, replace } from "../dom.js";
import { layeredGraph } from "../charts/graph.js";
import { Panel } from "../panel.js";

export class CmdbPanel extends Panel {
  constructor(root, api) {
    super(root, api);
    this.search = this.part("cmdb-search");
    this.depth = this.part("cmdb-depth");
    this.list = this.part("assets-list");
    this.selected = null;
    this.search.addEventListener("input", debounce(() => this.load(), 250));
    this.depth.addEventListener("change", () => this.selected && this.select(this.selected));
  }

  async load() {
    await this.guard(async () => {
      const page = await this.api.get("/cmdb/assets", { q: this.search.value.trim(), limit: 30 });
      replace(this.list, ...page.items.map((a) => el("li", {
        class: "row asset", "data-testid": "asset-row", "data-asset-id": a.id ?? a.asset_id,
        tabindex: 0, onclick: () => this.select(a.id ?? a.asset_id),
        onkeydown: (e) => { if (e.key === "Enter") this.select(a.id ?? a.asset_id); },
      }, [
        el("span", { class: "resource", text: a.name ?? a.id ?? a.asset_id }),
        el("span", { class: "badge", text: a.type ?? a.asset_type ?? "" }),
        el("span", { class: "summary", text: a.team ? `team ${a.team}` : "" }),
      ])));
      if (!page.items.length) this.list.append(el("li", { class: "empty", text: "no assets match" }));
    });
  }

  async select(assetId) {
    this.selected = assetId;
    await this.guard(async () => {
      const radius = await this.api.get(`/cmdb/assets/${encodeURIComponent(assetId)}/blast-radius`,
        { depth: this.depth.value });
      replace(this.part("blast-area"),
        el("h3", { text: `blast radius of ${assetId}: ${radius.nodes.length - 1} dependants` }),
        layeredGraph({ testid: "blast-graph", root: radius.root, nodes: radius.nodes,
          edges: radius.edges }));
    });
  }
}
