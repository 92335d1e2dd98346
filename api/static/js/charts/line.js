// A time-series line chart as SVG: lines, an expected band, markers, a shaded span
// (warm-up) and horizontal reference lines.

import { svg, formatNumber, formatTime } from "../dom.js";
import { extent, linear, MARGIN, ticks } from "./scale.js";

/**
 * @param {object} spec
 *   lines: [{name, points: [{x, y}], className}]
 *   band: [{x, lower, upper}] (gaps where either is null)
 *   markers: [{x, y, title}]  drawn as circles with data-testid "anomaly-marker"
 *   shade: {from, to, label}  an x span drawn behind the data
 *   rules: [{y, label, className}]  horizontal lines across the chart
 *   testid, width, height, xFormat
 */
export function lineChart(spec) {
  const { width = 640, height = 220, lines = [], band = [], markers = [], rules = [] } = spec;
  const xs = [...lines.flatMap((l) => l.points.map((p) => p.x)), ...band.map((b) => b.x)];
  const ys = [...lines.flatMap((l) => l.points.map((p) => p.y)),
    ...band.flatMap((b) => [b.lower, b.upper]), ...rules.map((r) => r.y)];
  const xDomain = extent(xs, 0);
  const yDomain = extent(ys);
  const x = linear(xDomain, [MARGIN.left, width - MARGIN.right]);
  const y = linear(yDomain, [height - MARGIN.bottom, MARGIN.top]);
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "chart", "data-testid": spec.testid,
    role: "img", "aria-label": spec.label || "chart",
  });
  if (spec.shade) root.append(shade(spec.shade, x, height));
  root.append(axes(xDomain, yDomain, x, y, width, height, spec.xFormat || formatTime));
  for (const segment of bandSegments(band)) {
    root.append(svg("path", { class: "band", "data-testid": "chart-band", d: areaPath(segment, x, y) }));
  }
  for (const line of lines) {
    root.append(svg("path", {
      class: `line ${line.className || ""}`, "data-testid": "chart-line", "data-name": line.name,
      d: linePath(line.points, x, y),
    }));
  }
  for (const rule of rules) root.append(ruleLine(rule, y, width));
  for (const m of markers) {
    root.append(svg("circle", {
      class: "marker", "data-testid": "anomaly-marker", cx: x(m.x), cy: y(m.y), r: 4,
    }, [svg("title", { text: m.title || "" })]));
  }
  return root;
}

function axes(xDomain, yDomain, x, y, width, height, xFormat) {
  const group = svg("g", { class: "axis" });
  for (const v of ticks(yDomain)) {
    group.append(svg("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(v), y2: y(v) }),
      svg("text", { x: MARGIN.left - 4, y: y(v) + 3, "text-anchor": "end", text: formatNumber(v) }));
  }
  if (Number.isFinite(xDomain[0]) && xDomain[1] > xDomain[0]) {
    for (const v of [xDomain[0], (xDomain[0] + xDomain[1]) / 2, xDomain[1]]) {
      group.append(svg("text", {
        x: x(v), y: height - 6, "text-anchor": "middle", text: xFormat(v),
      }));
    }
  }
  return group;
}

function shade({ from, to, label }, x, height) {
  const x0 = x(from);
  const x1 = x(to);
  return svg("g", { class: "shade", "data-testid": "chart-shade" }, [
    svg("rect", { x: Math.min(x0, x1), y: MARGIN.top, width: Math.abs(x1 - x0),
      height: height - MARGIN.top - MARGIN.bottom }),
    svg("text", { x: Math.min(x0, x1) + 4, y: MARGIN.top + 12, text: label || "" }),
  ]);
}

function ruleLine({ y: value, label, className }, y, width) {
  return svg("g", { class: `rule ${className || ""}`, "data-testid": "chart-rule" }, [
    svg("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(value), y2: y(value) }),
    svg("text", { x: width - MARGIN.right - 2, y: y(value) - 3, "text-anchor": "end",
      text: label || "" }),
  ]);
}

/** Runs of consecutive band points with both bounds known. */
function bandSegments(band) {
  const segments = [];
  let run = [];
  for (const b of band) {
    if (Number.isFinite(b.lower) && Number.isFinite(b.upper)) run.push(b);
    else if (run.length) segments.push(run.splice(0));
  }
  if (run.length) segments.push(run);
  return segments;
}

function linePath(points, x, y) {
  const parts = [];
  let pen = "M";
  for (const p of points) {
    if (Number.isFinite(p.y)) {
      parts.push(`${pen}${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`);
      pen = "L";
    } else pen = "M";
  }
  return parts.join("");
}

function areaPath(segment, x, y) {
  const top = segment.map((b) => `${x(b.x).toFixed(1)},${y(b.upper).toFixed(1)}`);
  const bottom = segment.slice().reverse().map((b) => `${x(b.x).toFixed(1)},${y(b.lower).toFixed(1)}`);
  return `M${top.join("L")}L${bottom.join("L")}Z`;
}
