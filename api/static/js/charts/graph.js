// A dependency graph laid out in layers: the root at the left, each node in the column
// of its depth, edges as arrows. Deterministic (sorted within a column), no physics.

import { svg } from "../dom.js";

/**
 * @param {object} spec nodes: [{id, name, type, team, depth}], edges: [{source, target, type}],
 *   root, testid, width
 */
export function layeredGraph(spec) {
  const { nodes, edges, root, width = 640 } = spec;
  const columns = new Map();
  for (const node of nodes) {
    const depth = Number.isInteger(node.depth) ? node.depth : 0;
    if (!columns.has(depth)) columns.set(depth, []);
    columns.get(depth).push(node);
  }
  const depths = [...columns.keys()].sort((a, b) => a - b);
  const rows = Math.max(1, ...[...columns.values()].map((c) => c.length));
  const height = Math.max(120, rows * 46 + 30);
  const step = (width - 140) / Math.max(1, depths.length - 1);
  const place = new Map();
  depths.forEach((depth, i) => {
    const column = columns.get(depth).sort((a, b) => String(a.id).localeCompare(String(b.id)));
    const gap = height / (column.length + 1);
    column.forEach((node, j) => place.set(node.id, { x: 70 + i * step, y: gap * (j + 1) }));
  });
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart graph",
    "data-testid": spec.testid, role: "img", "aria-label": "blast radius" });
  chart.append(svg("defs", {}, [svg("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 18, refY: 5, markerWidth: 6, markerHeight: 6,
    orient: "auto-start-reverse" }, [svg("path", { d: "M0,0L10,5L0,10Z", class: "arrow" })])]));
  for (const edge of edges) {
    const a = place.get(edge.source);
    const b = place.get(edge.target);
    if (!a || !b) continue;
    chart.append(svg("line", { class: "edge", "data-testid": "graph-edge", x1: a.x, y1: a.y,
      x2: b.x, y2: b.y, "marker-end": "url(#arrow)", "data-source": edge.source,
      "data-target": edge.target }, [svg("title", { text: edge.type || "" })]));
  }
  for (const node of nodes) {
    const p = place.get(node.id);
    chart.append(svg("g", { class: `node${node.id === root ? " root" : ""}`,
      "data-testid": "graph-node", "data-id": node.id, transform: `translate(${p.x},${p.y})` }, [
      svg("circle", { r: node.id === root ? 11 : 8 }),
      svg("text", { y: -14, "text-anchor": "middle", text: node.name || node.id }),
      svg("title", { text: `${node.id} (${node.type || "?"}, team ${node.team || "?"}, depth ${node.depth})` }),
    ]));
  }
  return chart;
}
