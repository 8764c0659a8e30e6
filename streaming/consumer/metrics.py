"""Prometheus metrics of the realtime consumer, served on ``/metrics`` (default port 8002).

Defined once per process (the prometheus_client registry is global); several consumers in one process
(tests) share them, labelled by consumer group.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

logger = logging.getLogger(__name__)

RECORDS = Counter(
    "clickpulse_consumer_records_total",
    "Records consumed from clicks.raw (rate() gives records/s).",
    ["group"],
)
EVENTS = Counter(
    "clickpulse_consumer_events_total",
    "Valid events by outcome: counted (first occurrence) or duplicate (event_id seen before).",
    ["group", "outcome"],
)
DEAD_LETTERS = Counter("clickpulse_consumer_dead_letters_total", "Records sent to clicks.dlq.", ["group"])
DUPLICATES = Counter("clickpulse_consumer_duplicates_total", "Duplicated event_ids dropped.", ["group"])
LATE = Counter(
    "clickpulse_consumer_late_events_total",
    "Events beyond the allowed lateness (in totals, not in windows).",
    ["group"],
)
REDIS_ERRORS = Counter(
    "clickpulse_consumer_redis_errors_total", "Failed Redis batch writes (retried).", ["group"]
)
PRODUCE_ERRORS = Counter(
    "clickpulse_consumer_produce_errors_total", "Failed enriched/DLQ deliveries (batch retried).", ["group"]
)
LAG = Gauge(
    "clickpulse_consumer_lag",
    "Records behind the partition's high watermark.",
    ["group", "topic", "partition"],
)
BATCH_SECONDS = Histogram(
    "clickpulse_consumer_batch_seconds",
    "Time to process one batch: decode, Redis, produce, offset store.",
    ["group"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_SIZE = Histogram(
    "clickpulse_consumer_batch_records",
    "Records per batch.",
    ["group"],
    buckets=(1, 10, 100, 500, 1000, 5000, 20000),
)
EVENT_TO_REDIS_SECONDS = Histogram(
    "clickpulse_consumer_event_to_redis_seconds",
    "From the record's Kafka timestamp to its Redis write being acknowledged.",
    ["group"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Start the /metrics HTTP server in a daemon thread; port 0 means no server."""
    if port <= 0:
        return
    start_http_server(port, addr=addr)
    logger.info("metrics on http://%s:%d/metrics", addr, port)
