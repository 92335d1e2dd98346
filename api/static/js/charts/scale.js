// Linear scales and axis ticks shared by the charts.

/** A function mapping [d0, d1] onto [r0, r1] (a flat domain maps to the middle). */
export function linear([d0, d1], [r0, r1]) {
  const span = d1 - d0;
  return span === 0 ? () => (r0 + r1) / 2 : (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** [min, max] of the finite `values`, widened by `pad` of the span ([0, 1] when none). */
export function extent(values, pad = 0.05) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (lo === Infinity) return [0, 1];
  const margin = (hi - lo || Math.abs(hi) || 1) * pad;
  return [lo - margin, hi + margin];
}

/** About `count` round values within [lo, hi]. */
export function ticks([lo, hi], count = 4) {
  const raw = (hi - lo) / count || 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Chart margins: room for the y labels at the left and the x labels below. */
export const MARGIN = { top: 10, right: 12, bottom: 22, left: 48 };
