"""Unit tests for the publisher library: validation first, reports, traceparent (no broker)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from events.codec import EventCodec, ValidationError
from events.model import Event
from producers.generator import TrafficGenerator
from producers.publisher import (
    InMemoryEventPublisher,
    KafkaEventPublisher,
    PublishError,
    PublishFailure,
    PublishReport,
    _header_list,
    check_traceparent,
)

# Nothing listens on port 1, so every message stays queued until it times out.
NOWHERE = "127.0.0.1:1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _events(count: int) -> list[Event]:
    generator = TrafficGenerator(
        types=("ContentSubmitted",), seed=9, start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    )
    return list(generator.events(count))


def test_an_invalid_event_means_nothing_is_queued() -> None:
    good = _events(3)
    bad = dataclasses.replace(good[1], payload={**good[1].payload, "speaker": "narrator"})
    publisher = KafkaEventPublisher(NOWHERE, flush_timeout=2)
    with pytest.raises(ValidationError) as caught:
        publisher.publish_all([good[0], bad, good[2]])
    assert caught.value.field == "speaker"
    assert publisher.flush(0) == 0  # nothing was handed to the producer


def test_unconfirmed_deliveries_are_reported_as_failures() -> None:
    events = _events(2)
    publisher = KafkaEventPublisher(NOWHERE, flush_timeout=2)
    report = publisher.publish_all(events)
    assert report.delivered == 0 and report.failed == 2
    assert [f.index for f in report.failures] == [0, 1]
    assert report.failures[0].event_id == str(events[0].envelope.event_id)
    assert "timed out" in report.failures[0].error.lower()
    with pytest.raises(PublishError, match="2 of 2 event"):
        report.raise_for_failures()


def test_producer_is_idempotent_waits_for_all_replicas_and_compresses() -> None:
    publisher = KafkaEventPublisher(NOWHERE, flush_timeout=10)
    config = publisher.producer_config
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["compression.type"] in {"lz4", "zstd"}
    # librdkafka gives up on a message before publish_all stops waiting for it.
    assert config["delivery.timeout.ms"] < 10_000
    assert publisher.publish_all([]).ok
    with pytest.raises(ValueError, match="flush_timeout"):
        KafkaEventPublisher(NOWHERE, flush_timeout=0.5)


def test_report_merging_shifts_indexes() -> None:
    first = PublishReport(attempted=3, delivered=3)
    second = PublishReport(
        attempted=2, delivered=1, failures=(PublishFailure(1, "X", "id", "boom"),)
    )
    merged = first.merged(second)
    assert (merged.attempted, merged.delivered, merged.failed) == (5, 4, 1)
    assert merged.failures[0].index == 4
    assert not merged.ok and first.ok


@pytest.mark.parametrize(
    "value",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
    ],
)
def test_malformed_traceparent_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        check_traceparent(value)


def test_traceparent_header_is_added_once() -> None:
    assert check_traceparent(TRACEPARENT.upper()) == TRACEPARENT
    encoded = EventCodec().encode(_events(1)[0])
    headers = _header_list(encoded, TRACEPARENT)
    assert headers.count(("traceparent", TRACEPARENT.encode())) == 1
    assert ("content-type", b"application/avro") in headers
    assert all(name != "traceparent" for name, _ in _header_list(encoded, None))


def test_in_memory_publisher_validates_too() -> None:
    publisher = InMemoryEventPublisher()
    events = _events(2)
    assert publisher.publish_all(events, traceparent=TRACEPARENT).delivered == 2
    bad = dataclasses.replace(events[0], payload={**events[0].payload, "text": None})
    with pytest.raises(ValidationError):
        publisher.publish_all([bad])
    assert publisher.published == events
    assert publisher.traceparents == [TRACEPARENT, TRACEPARENT]
