"""Baseline for throughput benches: a bare Faust agent that only consumes and decodes.

:func:`build_baseline` builds, for any topic and subject, an app whose single
agent decodes every record (same batching and codec as our agents, no logic,
no sinks, no output) and, after ``count`` records, prints one JSON line::

    {"events": N, "seconds": S, "rate": R}

measured from the first to the last decoded record.  Run it as a process::

    python -m dharma.bench.faust_baseline --topic audit.logs --count 20000

(consumer group ``<DHARMA_WORKER_APP_ID>-baseline``, from the earliest offset
or from the group's committed offsets).  The caller stops the process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import faust

from dharma.streams.app import make_app, raw_topic, run_worker
from dharma.streams.errors import RejectedEvent
from dharma.streams.settings import Settings
from dharma.streams.topics import by_name

__all__ = ["build_baseline"]


def build_baseline(settings: Settings, topic: str, count: int,
                   subject: str | None = None) -> faust.App:
    """An app consuming ``topic`` and decoding with ``subject`` (default: its value subject)."""
    spec = by_name(topic)
    subject = subject or spec.value_subject
    app, ctx = make_app(settings, "baseline")
    worker = settings.worker
    seen: dict[str, float] = {"n": 0, "bad": 0, "first": 0.0, "first_n": 0}

    @app.agent(raw_topic(app, spec), name="baseline-decode")
    async def decode(stream: faust.StreamT) -> None:
        """Decode records and count them; print the rate after ``count``."""
        batches = stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
            worker.batch_size, within=worker.batch_within_s)
        async for events in batches:
            await ctx.resolve_schemas(events)
            for event in events:
                try:
                    ctx.wire.decode(subject, event.message.value)
                except RejectedEvent:
                    seen["bad"] += 1
            seen["n"] += len(events)
            if not seen["first"]:  # like the trust bench: from the end of the first batch
                seen["first"], seen["first_n"] = time.perf_counter(), seen["n"]
            elif seen["n"] >= count:
                elapsed = time.perf_counter() - seen["first"]
                counted = seen["n"] - seen["first_n"]
                result = {"events": seen["n"], "undecodable": seen["bad"], "seconds": elapsed,
                          "rate": counted / elapsed if elapsed > 0 else 0.0}
                print(json.dumps(result), flush=True)  # the process's output
                seen.update(n=0, first=0.0)

    return app


def main(argv: list[str] | None = None) -> None:
    """Run the baseline worker until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--subject", default=None)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    app = build_baseline(Settings(), args.topic, args.count, args.subject)
    # the worker's own output (spinner, banners) goes to stderr: stdout is the result only
    run_worker(app, args.log_level, stdout=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
