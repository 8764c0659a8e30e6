"""The collector's Prometheus metrics, on a registry of its own (one per app, so tests never collide).

With ``--workers N`` each worker process keeps its own numbers and a scrape reaches one of them: run
one worker per port (or per container) when exact totals matter.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class CollectorMetrics:
    def __init__(self, producer: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "clickpulse_collector_requests",
            "POST /v1/events requests by HTTP status.",
            ["status"],
            registry=self.registry,
        )
        self.events = Counter(
            "clickpulse_collector_events",
            "Events accepted (clicks.raw) or rejected (clicks.dlq; an unreadable body counts once).",
            ["outcome"],
            registry=self.registry,
        )
        self.unavailable = Counter(
            "clickpulse_collector_unavailable",
            "503 answers by cause: queue_full, delivery_failed, delivery_timeout.",
            ["cause"],
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "clickpulse_collector_produce_latency_seconds",
            "From the first record enqueued to Kafka's last delivery report, per request.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "clickpulse_collector_batch_size_events",
            "Events per accepted request.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.request_bytes = Histogram(
            "clickpulse_collector_request_bytes",
            "Decoded body size per request.",
            buckets=(1024, 8192, 32768, 65536, 131072, 262144, 524288),
            registry=self.registry,
        )
        queue = Gauge(
            "clickpulse_collector_producer_queue_records",
            "Records waiting in the producer's local queue for Kafka.",
            registry=self.registry,
        )
        queue.set_function(lambda: float(len(producer)))
