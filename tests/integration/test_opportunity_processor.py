"""Opportunity scoring through Kafka: `fairstream processor opportunity` as a subprocess."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from stacktest import byte_headers, decode, read_topic, run_processor

from events.catalog import topic_name
from events.codec import EventCodec
from events.testing import example_event
from fairstream.settings import Settings
from producers.publisher import KafkaEventPublisher

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(isolated_settings: Settings, test_id: str) -> Settings:
    """Return the test's settings with the processor's own consumer group."""
    return isolated_settings.model_copy(
        update={"opportunity_processor_group": f"t-{test_id}-opportunity"}
    )


@pytest.fixture
def processor(
    settings: Settings, event_topics: list[str], test_id: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `fairstream processor opportunity` for this test."""
    with run_processor("opportunity", settings, tmp_path, test_id) as proc:
        yield proc


def test_niches_are_scored_and_garbage_is_dead_lettered(
    settings: Settings, processor: subprocess.Popen[bytes]
) -> None:
    example = example_event("NicheResearched", correlation_id="wf-int-1")
    weak = example_event(
        "NicheResearched",
        niche_id="niche-weak",
        market_size="small",
        growth_rate="low",
        competition="high",
        problems=[{"title": "meh", "description": "", "severity": "low"}],
        solution_feasibility=0.1,
        monetization_potential=0.1,
    )
    with KafkaEventPublisher.from_settings(settings) as publisher:
        publisher.publish_all([example, weak]).raise_for_failures()
    source = topic_name("NicheResearched", settings.topic_prefix)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(source, key=b"poison", value=b"\x00\x01 not an event")
    assert producer.flush(30) == 0

    codec = EventCodec.from_url(None, topic_prefix=settings.topic_prefix)
    out = decode(
        codec, read_topic(settings, topic_name("OpportunityScored", settings.topic_prefix), 2)
    )
    assert processor.poll() is None, "the processor exited"
    by_niche = {e.payload["niche_id"]: e for e in out}
    assert set(by_niche) == {"niche-ai-inventory-etsy", "niche-weak"}

    scored = by_niche["niche-ai-inventory-etsy"]
    assert scored.payload["overall_score"] == 0.775  # worked by hand in the unit tests
    assert scored.payload["band"] == "very_good"
    assert scored.payload["factors"]["problem_severity"] == 0.8
    assert scored.envelope.causation_id == str(example.envelope.event_id)
    assert scored.envelope.correlation_id == "wf-int-1"
    assert scored.envelope.subject == "niche-ai-inventory-etsy"

    # small 0.3, low growth 0.3, high competition 0.2, low severity 0.3, 0.1, 0.1:
    # 0.06 + 0.045 + 0.03 + 0.06 + 0.015 + 0.015 = 0.225 -> fair
    low = by_niche["niche-weak"]
    assert low.payload["overall_score"] == 0.225
    assert low.payload["band"] == "fair"

    [dead] = read_topic(settings, source + ".dlq", 1)
    headers = byte_headers(dead)
    assert dead.key() == b"poison"
    assert headers["dlq_processor"] == b"opportunity-scorer"
    assert headers["dlq_source_topic"].decode() == source
    assert headers["dlq_reason"]
