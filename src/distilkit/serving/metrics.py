"""Prometheus metrics of one server: requests, errors, latency, batch sizes, failed batches retried request
by request, and queue depth.

Each app gets its own registry, so several apps in one process (the tests) do not share counters.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # no *_created series: a timestamp per label set that nobody graphs

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depth: Callable[[], float]):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "distilkit_requests", "HTTP requests by route and status code", ["route", "status"], registry=self.registry
        )
        self.errors = Counter(
            "distilkit_errors",
            "Requests answered with a 4xx or 5xx status, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "distilkit_request_latency_seconds",
            "Time to answer a request, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.texts = Counter("distilkit_predicted_texts", "Texts predicted", registry=self.registry)
        self.batch_size = Histogram(
            "distilkit_batch_size", "Texts per forward pass", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.retried = Counter(
            "distilkit_batch_retries",
            "Forward passes over texts of several requests that "
            "failed, after which each request ran alone (those failing alone are answered "
            "with an error, the others with their results)",
            registry=self.registry,
        )
        self.retried_requests = Counter(
            "distilkit_retried_requests", "Requests run alone after their batch failed", registry=self.registry
        )
        depth = Gauge("distilkit_queue_depth", "Texts waiting for a batch", registry=self.registry)
        depth.set_function(queue_depth)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        if status >= 400:
            self.errors.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def on_batch(self, size: int) -> None:
        self.batch_size.observe(size)
        self.texts.inc(size)

    def on_retry(self, requests: int) -> None:
        self.retried.inc()
        self.retried_requests.inc(requests)

    def render(self) -> bytes:
        return generate_latest(self.registry)
