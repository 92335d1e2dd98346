"""Prometheus metrics of the API process's feed and live subscriptions (own registry,
served by ``GET /api/v1/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["LiveMetrics"]


class LiveMetrics:
    """The API's counters: ``dharma_api_live_dropped_total``,
    ``dharma_api_live_subscribers``, ``dharma_api_feed_records_total{topic}`` and
    ``dharma_api_feed_undecodable_total{topic}``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.dropped = Counter(
            "dharma_api_live_dropped", "Live events a subscriber lost because it read "
            "slower than they came (drop-oldest).", registry=self.registry)
        self.subscribers = Gauge(
            "dharma_api_live_subscribers", "Live subscriptions open.", registry=self.registry)
        self.records = Counter(
            "dharma_api_feed_records", "Records the API's feed read, by topic.", ["topic"],
            registry=self.registry)
        self.undecodable = Counter(
            "dharma_api_feed_undecodable", "Records the API's feed passed over because they "
            "did not decode (their worker dead-letters them).", ["topic"],
            registry=self.registry)
