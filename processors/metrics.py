"""Prometheus metrics every processor reports, under names dashboards and alerts rely on."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_PROCESSED = Counter(
    "fairstream_events_processed_total",
    "Events handled by a processor, by outcome.",
    ["processor", "event_type", "outcome"],
)
DEAD_LETTERED = Counter(
    "fairstream_events_dead_lettered_total",
    "Events sent to a dead-letter topic.",
    ["processor", "reason"],
)
SCORING_LATENCY = Histogram(
    "fairstream_scoring_latency_seconds",
    "Wall time to score one micro-batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
