"""Writing ground truth beside a run's output."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from dharma.synthetic.access import AccessTruth
from dharma.synthetic.model import Label

LABEL_FIELDS = (
    "incident_id",
    "category",
    "source",
    "metrics",
    "onset_ms",
    "end_ms",
    "severity",
    "chaos",
)


def write_labels(
    directory: str | Path, labels: Sequence[Label], access: Sequence[AccessTruth] | None = None
) -> list[Path]:
    """Write ``labels.json`` and ``labels.csv`` (and ``access_labels.json`` when given).

    In the CSV, ``metrics`` is joined with ``;``. Returns the paths written.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "labels.json", out / "labels.csv"
    json_path.write_text(json.dumps([lb.to_dict() for lb in labels], indent=2) + "\n")
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LABEL_FIELDS)
        writer.writeheader()
        for lb in labels:
            writer.writerow({**lb.to_dict(), "metrics": ";".join(lb.metrics)})
    paths = [json_path, csv_path]
    if access is not None:
        access_path = out / "access_labels.json"
        access_path.write_text(json.dumps([a.to_dict() for a in access], indent=1) + "\n")
        paths.append(access_path)
    return paths


def read_labels(path: str | Path) -> list[Label]:
    """Labels back from a ``labels.json`` written by :func:`write_labels`."""
    rows = json.loads(Path(path).read_text())
    return [
        Label(
            r["incident_id"],
            r["category"],
            r["source"],
            tuple(r["metrics"]),
            int(r["onset_ms"]),
            int(r["end_ms"]),
            r.get("severity", "warning"),
            bool(r.get("chaos", False)),
        )
        for r in rows
    ]
