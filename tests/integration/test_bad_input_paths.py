"""Bad input through the running paths: a processor dead-letters it, the publisher reports it.

Each poison record is produced raw onto the revenue processor's input topic; the running
`fairstream processor revenue` must copy it to `<topic>.dlq` with the reason in its headers,
keep going, and still project the good request sent after the poison.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from confluent_kafka import Producer
from stacktest import byte_headers, decode, read_topic

from events.catalog import topic_name
from events.codec import SINGLE_OBJECT_HEADER_SIZE, EventCodec
from events.testing import example_event
from fairstream.settings import Settings
from producers.publisher import KafkaEventPublisher

pytestmark = pytest.mark.integration

INPUT = "RevenueProjectionRequested"


def poison_records(
    codec: EventCodec,
) -> dict[bytes, tuple[bytes, list[tuple[str, str | bytes | None]], str]]:
    """Return key -> (value, headers, a word the dead-letter reason must contain)."""
    good = codec.encode(example_event(INPUT, projection_id="poison-base"))
    other = codec.encode(example_event("NicheResearched"))
    unknown_fp = b"\xc3\x01" + bytes(8) + good.value[SINGLE_OBJECT_HEADER_SIZE:]
    # The same body minus its last field: a record that lacks a required field on the wire.
    short = good.value[: SINGLE_OBJECT_HEADER_SIZE + 40]
    return {
        b"random": (os.urandom(64).replace(b"\xc3", b"\x00"), [], "magic"),
        b"truncated": (good.value[: len(good.value) // 2], list(good.headers), "body"),
        b"missing-field": (short, [], "body"),
        b"unknown-fingerprint": (unknown_fp, [], "fingerprint"),
        b"wrong-type": (other.value, list(other.headers), "expected RevenueProjectionRequested"),
        b"empty": (b"", [], "empty"),
        b"header-lies": (good.value, [("ce_type", b"fairstream.NicheResearched.v1")], "ce_type"),
    }


def test_poison_records_are_dead_lettered_with_their_reason(
    revenue_settings: Settings, revenue_processor: subprocess.Popen[bytes]
) -> None:
    codec = EventCodec.from_url(None, topic_prefix=revenue_settings.topic_prefix)
    source = topic_name(INPUT, revenue_settings.topic_prefix)
    poison = poison_records(codec)
    producer = Producer({"bootstrap.servers": revenue_settings.kafka_bootstrap})
    for key, (value, record_headers, _) in poison.items():
        producer.produce(source, key=key, value=value, headers=record_headers)
    assert producer.flush(30) == 0
    request = example_event(INPUT, projection_id="after-poison")
    with KafkaEventPublisher.from_settings(revenue_settings) as publisher:
        publisher.publish_all([request]).raise_for_failures()

    dead = read_topic(revenue_settings, source + ".dlq", len(poison))
    assert revenue_processor.poll() is None, "the processor exited on poison"
    by_key = {m.key(): m for m in dead}
    assert set(by_key) == set(poison)
    for key, (value, _, word) in poison.items():
        message = by_key[key]
        headers = byte_headers(message)
        assert message.value() in (value, None), key  # the original bytes, untouched
        reason = headers["dlq_reason"].decode()
        assert word.lower() in reason.lower(), (key, reason)
        assert headers["dlq_error_type"] in (b"DecodeError", b"ValidationError"), key
        assert headers["dlq_source_topic"] == source.encode()
        assert headers["dlq_processor"] and headers["dlq_failed_at"]
        assert int(headers["dlq_source_offset"]) >= 0

    projected = decode(
        codec,
        read_topic(
            revenue_settings, topic_name("RevenueProjected", revenue_settings.topic_prefix), 1
        ),
    )
    assert [e.payload["projection_id"] for e in projected] == ["after-poison"]


def test_an_oversize_event_is_reported_by_index_and_the_rest_delivered(
    revenue_settings: Settings, event_topics: list[str]
) -> None:
    normal = example_event("ContentSubmitted", content_id="small")
    huge = example_event("ContentSubmitted", content_id="huge", text="x" * (2 * 1024 * 1024))
    other = example_event("ContentSubmitted", content_id="small-b")
    with KafkaEventPublisher.from_settings(revenue_settings) as publisher:
        report = publisher.publish_all([normal, huge, other])
    assert report.attempted == 3 and report.delivered == 2
    [failure] = report.failures
    assert failure.index == 1 and failure.event_id == str(huge.envelope.event_id)
    assert "size" in failure.error.lower() or "large" in failure.error.lower(), failure.error
    delivered = read_topic(
        revenue_settings, topic_name("ContentSubmitted", revenue_settings.topic_prefix), 2
    )
    assert sorted(m.key() or b"" for m in delivered) == [b"small", b"small-b"]
