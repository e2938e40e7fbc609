"""How the order paths perform, as Prometheus histograms."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram


class OrderMetrics:
    """How the order paths perform: taps per decision transaction and its duration."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_taps = Histogram(
            "livecommerce_order_batch_taps",
            "Taps decided by one order transaction",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "livecommerce_order_batch_seconds",
            "Duration of one order transaction, commit included",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
