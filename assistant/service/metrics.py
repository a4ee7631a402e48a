"""Prometheus metrics of the service (text format at ``GET /metrics``).

Each app gets its own registry, so two apps in one process (tests) never share counters. With
several workers, each reports its own; scrape each worker or aggregate at the load balancer.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from assistant.records import ConversationRecord, ConversationSink

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """Answers by route and reason, per-stage latency, and HTTP requests by path and status."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.answers = Counter(
            "assistant_answers", "Answered requests by route and first reason code.", ["route", "reason"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "assistant_stage_seconds", "Seconds per pipeline stage.", ["stage"], buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "assistant_http_requests", "HTTP requests by method, path template and status.", ["method", "path", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "assistant_http_request_seconds", "Seconds per HTTP request by path template.", ["path"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )

    def observe(self, record: ConversationRecord) -> None:
        """Count one answered request and its stage timings."""
        response = record.response
        reason = response.reasons[0].code.value if response.reasons else "none"
        self.answers.labels(route=response.route.value, reason=reason).inc()
        for name, ms in record.timings_ms.items():
            self.stage_seconds.labels(stage=name.removesuffix("_ms")).observe(ms / 1000)


class MeteredSink:
    """Observes each record for the metrics, then hands it to the real sink."""

    def __init__(self, sink: ConversationSink, metrics: ServiceMetrics) -> None:
        self.sink = sink
        self.metrics = metrics
        self.store = getattr(sink, "store", None)  # so Assistant.store finds the store behind the metrics

    def record(self, record: ConversationRecord) -> None:
        """Count ``record``, then store it."""
        self.metrics.observe(record)
        self.sink.record(record)

    def close(self) -> None:
        """Close the real sink."""
        close = getattr(self.sink, "close", None)
        if callable(close):
            close()
