// Bar charts as SVG: stacked vertical bars over categories (time buckets, days) and
// horizontal bars for ranked counts.

import { svg, formatNumber } from "../dom.js";
import { linear, MARGIN, ticks } from "./scale.js";

/**
 * @param {object} spec
 *   categories: [label]; stacks: [{name, values: [number], className}]
 *   testid, width, height
 */
export function stackedBars(spec) {
  const { categories, stacks, width = 640, height = 200 } = spec;
  const totals = categories.map((_, i) => stacks.reduce((s, k) => s + (k.values[i] || 0), 0));
  const top = Math.max(1, ...totals);
  const y = linear([0, top], [height - MARGIN.bottom, MARGIN.top]);
  const slot = (width - MARGIN.left - MARGIN.right) / Math.max(1, categories.length);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart",
    "data-testid": spec.testid, role: "img", "aria-label": spec.label || "bars" });
  const axis = svg("g", { class: "axis" });
  for (const v of ticks([0, top])) {
    axis.append(svg("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(v), y2: y(v) }),
      svg("text", { x: MARGIN.left - 4, y: y(v) + 3, "text-anchor": "end", text: formatNumber(v) }));
  }
  const every = Math.ceil(categories.length / 6);
  categories.forEach((label, i) => {
    if (i % every === 0) {
      axis.append(svg("text", { x: MARGIN.left + slot * (i + 0.5), y: height - 6,
        "text-anchor": "middle", text: label }));
    }
  });
  root.append(axis);
  categories.forEach((label, i) => {
    let base = 0;
    for (const stack of stacks) {
      const value = stack.values[i] || 0;
      if (value > 0) {
        root.append(svg("rect", {
          class: `bar ${stack.className || ""}`, "data-testid": "bar", "data-name": stack.name,
          x: MARGIN.left + slot * i + slot * 0.1, width: Math.max(1, slot * 0.8),
          y: y(base + value), height: Math.max(0.5, y(base) - y(base + value)),
        }, [svg("title", { text: `${label} ${stack.name}: ${formatNumber(value)}` })]));
      }
      base += value;
    }
  });
  return root;
}

/** Horizontal bars: items [{label, value, className}], longest first as given. */
export function horizontalBars(spec) {
  const { items, width = 560, rowHeight = 18 } = spec;
  const labelWidth = 200;
  const top = Math.max(1, ...items.map((i) => i.value));
  const x = linear([0, top], [labelWidth, width - 40]);
  const height = Math.max(rowHeight, items.length * rowHeight) + 4;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart hbars",
    "data-testid": spec.testid, role: "img", "aria-label": spec.label || "bars" });
  items.forEach((item, i) => {
    const yTop = i * rowHeight + 2;
    root.append(svg("g", { "data-testid": "hbar", "data-label": item.label }, [
      svg("text", { x: labelWidth - 4, y: yTop + rowHeight * 0.7, "text-anchor": "end",
        text: truncate(item.label, 32) }, [svg("title", { text: item.label })]),
      svg("rect", { class: `bar ${item.className || ""}`, x: labelWidth, y: yTop + 2,
        width: Math.max(1, x(item.value) - labelWidth), height: rowHeight - 5 }),
      svg("text", { x: x(item.value) + 4, y: yTop + rowHeight * 0.7, text: formatNumber(item.value) }),
    ]));
  });
  return root;
}

function truncate(text, length) {
  const s = String(text);
  return s.length > length ? `${s.slice(0, length - 1)}…` : s;
}
