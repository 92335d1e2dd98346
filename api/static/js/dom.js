// Small DOM helpers. Everything read from the API is set as text or as an
// attribute value, never parsed as HTML: whoever can write a topic must not run code here.

const SVG_NS = "http://www.w3.org/2000/svg";

/** An element `tag` with attributes `attrs` (`text` sets textContent, `on*` listeners). */
export function el(tag, attrs = {}, children = []) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, like `el`. */
export function svg(tag, attrs = {}, children = []) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

/** The element of `root` with data-testid `id`. */
export function byTestId(root, id) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/** Replace the children of `node` with `children`. */
export function replace(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

/** Epoch milliseconds of an API time (epoch ms or ISO-8601), or NaN. */
export function toMs(value) {
  if (typeof value === "number") return value;
  if (typeof value === "string") return /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  return NaN;
}

/** A time as `HH:MM:SS` (today) or `YYYY-MM-DD HH:MM` (UTC). */
export function formatTime(value) {
  const ms = toMs(value);
  if (!Number.isFinite(ms)) return "";
  const iso = new Date(ms).toISOString();
  const today = new Date().toISOString().slice(0, 10);
  return iso.startsWith(today) ? iso.slice(11, 19) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

/** A number with at most `digits` decimals ("" when not a number). */
export function formatNumber(value, digits = 2) {
  return typeof value === "number" && Number.isFinite(value)
    ? value.toLocaleString("en", { maximumFractionDigits: digits }) : "";
}

/** `fn` called once input has paused for `ms` (typing in a search box). */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** `fn` called at most once per `ms`, `ms` after the first call of a burst (a steady
 * stream of events still gets its refreshes, unlike with `debounce`). */
export function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer === null) {
      timer = setTimeout(() => {
        timer = null;
        fn();
      }, ms);
    }
  };
}
