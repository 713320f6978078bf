"""Revenue projection through Kafka: `fairstream processor revenue` as a subprocess."""

from __future__ import annotations

import subprocess

import pytest
from stacktest import byte_headers, decode, read_topic

from events.catalog import topic_name
from events.codec import EventCodec
from events.testing import example_event
from fairstream.settings import Settings
from producers.publisher import KafkaEventPublisher

pytestmark = pytest.mark.integration


def test_requests_are_projected_and_impossible_ones_dead_lettered(
    revenue_settings: Settings, revenue_processor: subprocess.Popen[bytes]
) -> None:
    request = example_event("RevenueProjectionRequested", correlation_id="wf-int-2")
    flat = example_event(
        "RevenueProjectionRequested",
        projection_id="proj-flat",
        initial_users=1000,
        acquisition_per_month=0.0,
        conversion_rate=0.1,
        churn_rate=0.1,
        growth_rate=0.0,
        months=2,
        tiers=[{"name": "only", "price_monthly": 10.0, "price_yearly": None, "share": 1.0}],
    )
    impossible = example_event("RevenueProjectionRequested", projection_id="bad", churn_rate=3.0)
    with KafkaEventPublisher.from_settings(revenue_settings) as publisher:
        publisher.publish_all([request, flat, impossible]).raise_for_failures()

    codec = EventCodec.from_url(None, topic_prefix=revenue_settings.topic_prefix)
    out = decode(
        codec,
        read_topic(
            revenue_settings, topic_name("RevenueProjected", revenue_settings.topic_prefix), 2
        ),
    )
    assert revenue_processor.poll() is None, "the processor exited"
    by_id = {e.payload["projection_id"]: e for e in out}
    assert set(by_id) == {"proj-stocksmith-1", "proj-flat"}

    projected = by_id["proj-stocksmith-1"]
    months = projected.payload["months"]
    # Month by month with the domain defaults, worked by hand in the unit tests.
    assert [(m["users"], m["free_users"], m["paid_users"]) for m in months] == [
        (50, 40, 10),
        (100, 72, 28),
        (150, 99, 51),
    ]
    assert [m["revenue"] for m in months] == [169.90, 419.74, 849.50]
    assert months[0]["revenue_by_tier"] == {"basic": 59.94, "pro": 59.97, "premium": 49.99}
    assert projected.payload["total_revenue"] == 1439.14
    assert projected.payload["arpu"] == 16.6569 and projected.payload["ltv"] == 333.14
    assert projected.envelope.causation_id == str(request.envelope.event_id)
    assert projected.envelope.correlation_id == "wf-int-2"

    # 1000 users, no acquisition: m1 900 users / 90 paid, m2 810 users / 153 paid.
    flat_months = by_id["proj-flat"].payload["months"]
    assert [(m["users"], m["paid_users"], m["revenue"]) for m in flat_months] == [
        (900, 90, 900.0),
        (810, 153, 1530.0),
    ]

    source = topic_name("RevenueProjectionRequested", revenue_settings.topic_prefix)
    [dead] = read_topic(revenue_settings, source + ".dlq", 1)
    headers = byte_headers(dead)
    assert dead.key() == b"bad"
    assert headers["dlq_error_type"] == b"InvalidProjectionRequest"
    assert b"churn_rate" in headers["dlq_reason"]
