"""Seasonality, correlation, incidents in their windows and quiet series elsewhere."""

from __future__ import annotations

import statistics

from synthetic_support import DAY_TICKS, START_MS, make_source, metric_table

from dharma.synthetic import INFRA_TOPIC, METRICS_TOPIC, Label

TICKS = 2 * DAY_TICKS


def _residual_scale(xs: list[float], window: int = 5) -> list[float]:
    """Residuals from a centred rolling median."""
    out = []
    for i, x in enumerate(xs):
        lo, hi = max(0, i - window), min(len(xs), i + window + 1)
        out.append(x - statistics.median(xs[lo:hi]))
    return out


def _robust_sd(xs: list[float]) -> float:
    med = statistics.median(xs)
    return 1.4826 * statistics.median(abs(x - med) for x in xs) + 1e-9


def test_daily_seasonality_visible() -> None:
    table = metric_table(make_source(scripted=()), TICKS)
    rps = table[("web-server-01", "requests_per_second")]
    day_ms = DAY_TICKS * 10_000
    phase = [((START_MS + k * 10_000) % day_ms) / day_ms for k in range(TICKS)]
    peak = [v for v, p in zip(rps, phase, strict=True) if 0.5 <= p < 0.7]
    trough = [v for v, p in zip(rps, phase, strict=True) if p < 0.2]
    assert statistics.mean(peak) > 2 * statistics.mean(trough)


def test_load_correlated_along_dependencies() -> None:
    table = metric_table(make_source(scripted=()), TICKS)
    web = table[("web-server-01", "requests_per_second")]
    for downstream in (
        ("app-server-01", "cpu_utilization"),
        ("db-primary-01", "cpu_utilization"),
        ("queue-01", "queue_depth"),
    ):
        assert statistics.correlation(web, table[downstream]) > 0.8


def test_quiet_series_stay_in_band() -> None:
    table = metric_table(make_source(scripted=()), TICKS)
    for series, xs in table.items():
        res = _residual_scale(xs)
        sd = _robust_sd(res)
        assert max(abs(r) for r in res) < 8 * sd, series


def _labelled(labels: list[Label], source: str, metric: str, ts: int) -> bool:
    return any(lb.contains(source, metric, ts) for lb in labels)


def test_incidents_only_change_labelled_samples() -> None:
    incident, quiet = make_source(), make_source(scripted=())
    base = {}
    for batch in quiet.ticks(TICKS):
        for e in batch:
            if e.topic == METRICS_TOPIC:
                base[(e.value["source"], e.value["metric"], e.value["ts"])] = e.value["value"]
    changed = unchanged_inside = 0
    samples = [e for b in incident.ticks(TICKS) for e in b if e.topic == METRICS_TOPIC]
    labels = incident.ground_truth()
    assert len(labels) == 6 and sum(lb.chaos for lb in labels) == 1
    for e in samples:
        key = (e.value["source"], e.value["metric"], e.value["ts"])
        inside = _labelled(labels, *key)
        if not inside:
            assert e.value["value"] == base[key], key
        elif e.value["value"] != base[key]:
            changed += 1
        else:
            unchanged_inside += 1
    assert changed > 10 * max(1, unchanged_inside)


def test_each_incident_is_strong_within_its_window() -> None:
    src = make_source()
    table = metric_table(src, TICKS)
    quiet = metric_table(make_source(scripted=()), TICKS)
    for lb in src.ground_truth():
        first = (lb.onset_ms - START_MS) // 10_000
        last = (lb.end_ms - START_MS) // 10_000
        for metric in lb.metrics:
            xs, base = table[(lb.source, metric)], quiet[(lb.source, metric)]
            sd = _robust_sd(_residual_scale(base))
            shift = max(abs(x - b) for x, b in zip(xs[first:last], base[first:last], strict=True))
            assert shift > 6 * sd, (lb.category, lb.source, metric)


def test_incident_and_chaos_events_bracket_labels() -> None:
    src = make_source()
    infra = [e.value for b in src.ticks(TICKS) for e in b if e.topic == INFRA_TOPIC]
    for lb in src.ground_truth():
        ids = [
            v
            for v in infra
            if lb.incident_id
            in (v["attributes"].get("incident_id"), v["attributes"].get("experiment_id"))
        ]
        statuses = [v["attributes"]["status"] for v in ids if v["type"] != "remediation"]
        if lb.chaos:
            assert statuses == ["started", "ended"]
            assert ids[0]["ts"] == lb.onset_ms and ids[-1]["ts"] == lb.end_ms
        else:
            assert statuses == ["open", "resolved"]
            assert lb.onset_ms <= ids[0]["ts"] < lb.end_ms and ids[-1]["ts"] == lb.end_ms
        checks = [
            v
            for v in infra
            if v["type"] == "health_check"
            and v["resource_id"] == lb.source
            and lb.onset_ms <= v["ts"] < lb.end_ms
        ]
        assert checks and all(c["attributes"]["status"] != "passing" for c in checks)
    passing = [
        v for v in infra if v["type"] == "health_check" and v["attributes"]["status"] == "passing"
    ]
    assert len(passing) > 0.8 * sum(v["type"] == "health_check" for v in infra)


def test_delayed_incident_events() -> None:
    from dharma.synthetic import IncidentConfig, ScriptedIncident, SyntheticSource

    scripted = (ScriptedIncident("memory_leak", "app-server-01", 10, 40),)
    config = IncidentConfig(0, 0, delayed_fraction=1.0, delay_ticks=6, scripted=scripted)
    src = SyntheticSource(1, START_MS, 10_000, incidents=config)
    opened = [
        e.value
        for b in src.ticks(60)
        for e in b
        if e.value.get("type") == "incident" and e.value["attributes"]["status"] == "open"
    ]
    assert [v["ts"] for v in opened] == [src.ground_truth()[0].onset_ms + 60_000]
