// A parser of the Server-Sent Events wire format (WHATWG HTML, "event stream
// interpretation"), fed text chunks cut anywhere: the live stream is read with fetch,
// since EventSource cannot send the Authorization header.

/** Feed it text; it returns the complete events: {event, data, id}. */
export class SseParser {
  constructor() {
    this.pending = "";
    this.reset();
    this.lastId = "";
  }

  reset() {
    this.event = "";
    this.data = [];
    this.hasData = false;
  }

  /** The events completed by `chunk`. */
  feed(chunk) {
    this.pending += chunk;
    const events = [];
    // a line ends at \r\n, \n or \r; a trailing \r may be the first half of \r\n
    const pattern = /\r\n|\n|\r(?!$)/g;
    let start = 0;
    for (let match; (match = pattern.exec(this.pending)) !== null;) {
      const line = this.pending.slice(start, match.index);
      start = match.index + match[0].length;
      const event = this.line(line);
      if (event) events.push(event);
    }
    this.pending = this.pending.slice(start);
    return events;
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null; // a comment: the heartbeat
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") {
      this.data.push(value);
      this.hasData = true;
    } else if (field === "id" && !value.includes("\0")) this.lastId = value;
    return null;
  }

  dispatch() {
    const event = this.hasData
      ? { event: this.event || "message", data: this.data.join("\n"), id: this.lastId } : null;
    this.reset();
    return event;
  }
}
