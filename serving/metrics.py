"""Prometheus metrics of the API: requests and latency by route template, live subscribers.

Each app gets its own registry (tests build several apps in one process). Routes are labelled by their
template (``/v1/videos/{video_id}/stats``), never by the raw path, so ids do not explode cardinality;
paths that match no route are labelled ``unmatched``. Latency is time to the response headers, so a
long-lived SSE stream counts as one quick request.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "clickpulse_api_requests",
            "HTTP requests by route template, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "clickpulse_api_request_seconds",
            "Time to response headers by route template and method",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.live_subscribers = Gauge(
            "clickpulse_api_live_subscribers",
            "Open /v1/live streams",
            ("channel_kind",),
            registry=self.registry,
        )
        self.live_messages = Counter(
            "clickpulse_api_live_messages",
            "Pub/Sub messages received by this process",
            ("channel_kind",),
            registry=self.registry,
        )
        self.live_dropped = Counter(
            "clickpulse_api_live_dropped",
            "Messages dropped because a slow SSE client's queue was full",
            registry=self.registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def route_label(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer the SSE streams)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # until the app answers

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = route_label(scope)
                self.metrics.latency.labels(route, scope["method"]).observe(time.perf_counter() - began)
                self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if status == 500:
                route = route_label(scope)
                self.metrics.latency.labels(route, scope["method"]).observe(time.perf_counter() - began)
                self.metrics.requests.labels(route, scope["method"], "500").inc()
            raise
