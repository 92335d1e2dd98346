// The live stream: /api/v1/live read with fetch (the token in a header), parsed as SSE,
// reconnected with backoff. Events wait in a bounded buffer (oldest dropped, counted)
// and reach the panels at most once per animation frame, so a burst never blocks the page.

import { SseParser } from "./sse.js";

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];

export class LiveStream {
  /**
   * @param {ApiClient} api the client (URL, headers, refusal reporting)
   * @param {object} options kinds (null: every kind permitted), bufferSize,
   *   onStatus(state, detail)
   */
  constructor(api, { kinds = null, bufferSize = 2000, onStatus = () => {} }) {
    this.api = api;
    this.kinds = kinds;
    this.bufferSize = bufferSize;
    this.onStatus = onStatus;
    this.handlers = new Map();
    this.buffer = [];
    this.dropped = 0;
    this.received = 0;
    this.attempt = 0;
    this.frame = null;
    this.controller = null;
  }

  /** Call `handler(records)` with each frame's batch of `kind` events. */
  on(kind, handler) {
    this.handlers.set(kind, [...(this.handlers.get(kind) || []), handler]);
  }

  start() {
    this.stop();
    this.controller = new AbortController();
    this.run(this.controller.signal);
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  async run(signal) {
    while (!signal.aborted) {
      let wait = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
      try {
        this.onStatus("connecting");
        await this.read(signal);
      } catch (error) {
        if (signal.aborted) return;
        if (error.retryAfter) wait = Math.max(wait, Number(error.retryAfter) * 1000 || 0);
        this.onStatus("retrying", error);
      }
      this.attempt += 1;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  async read(signal) {
    const url = this.api.url("/live", { kinds: this.kinds && this.kinds.join(",") });
    const response = await fetch(url, {
      signal, headers: this.api.headers({ Accept: "text/event-stream" }), cache: "no-store",
    });
    await this.api.check(response);
    this.onStatus("open");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the live stream ended");
      this.attempt = 0;
      for (const event of parser.feed(value)) this.accept(event);
    }
  }

  accept(event) {
    let record;
    try {
      record = JSON.parse(event.data);
    } catch {
      this.dropped += 1; // not JSON: nothing to show
      return;
    }
    this.received += 1;
    this.buffer.push({ kind: event.event, id: event.id, record });
    if (this.buffer.length > this.bufferSize) {
      this.dropped += this.buffer.length - this.bufferSize;
      this.buffer.splice(0, this.buffer.length - this.bufferSize);
    }
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = null;
    const batch = this.buffer;
    this.buffer = [];
    const byKind = new Map();
    for (const item of batch) {
      if (!byKind.has(item.kind)) byKind.set(item.kind, []);
      byKind.get(item.kind).push(item.record);
    }
    for (const [kind, records] of byKind) {
      for (const handler of this.handlers.get(kind) || []) handler(records);
    }
    this.onStatus("open");
  }
}
