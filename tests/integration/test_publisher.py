"""Integration tests for the Kafka publisher and `fairstream publish` against the local broker."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from events.catalog import topic_name
from events.codec import EventCodec, ValidationError
from events.model import Event
from events.topics import apply_topics, topic_specs
from fairstream.settings import REPO_ROOT, Settings
from producers.generator import SOURCE_TYPES, TrafficGenerator
from producers.publisher import TRACEPARENT_HEADER, KafkaEventPublisher

pytestmark = pytest.mark.integration

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def bootstrap() -> str:
    """Return the broker address, failing clearly when Kafka is not up."""
    settings = Settings()
    try:
        AdminClient({"bootstrap.servers": settings.kafka_bootstrap}).list_topics(timeout=5)
    except Exception as exc:
        pytest.fail(f"Kafka is not answering at {settings.kafka_bootstrap}: {exc}")
    return settings.kafka_bootstrap


def _delete_prefixed(bootstrap: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(30)


@pytest.fixture
def prefix(bootstrap: str) -> Iterator[str]:
    """Create the catalog's topics under a prefix of the test's own; delete them afterwards."""
    value = f"t-{uuid.uuid4().hex[:8]}."
    try:
        apply_topics(bootstrap, topic_specs(value, brokers=1))
        yield value
    finally:
        _delete_prefixed(bootstrap, value)


def consume(bootstrap: str, topics: list[str], expected: int, timeout: float = 30.0) -> list[Event]:
    """Read `expected` messages from the start of `topics` with a fresh group, decoding each."""
    codec = EventCodec()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4().hex[:8]}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    events: list[Event] = []
    try:
        consumer.subscribe(topics)
        waited = 0.0
        while len(events) < expected and waited < timeout:
            msg = consumer.poll(0.5)
            waited += 0.5
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                continue
            event = codec.decode(msg.value(), msg.headers())
            assert msg.key() == event.envelope.subject.encode("utf-8")
            headers = dict(msg.headers() or [])
            assert headers["ce_id"] == str(event.envelope.event_id).encode()
            events.append(
                dataclasses.replace(
                    event,
                    payload={**event.payload, "_traceparent": headers.get(TRACEPARENT_HEADER)},
                )
            )
    finally:
        consumer.close()
    return events


def _end_offset(bootstrap: str, topic: str) -> int:
    """Return how many messages `topic` holds (sum of its partitions' high watermarks)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}"})
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                return sum(
                    consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in partitions
                )
            except KafkaException:
                # Leadership of a just-created or just-grown topic may still be settling.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        consumer.close()


def test_publish_all_then_consume_back_every_source_type(bootstrap: str, prefix: str) -> None:
    generator = TrafficGenerator(seed=11)
    events = [generator.make(name) for name in SOURCE_TYPES for _ in range(3)]
    with KafkaEventPublisher(bootstrap, topic_prefix=prefix) as publisher:
        report = publisher.publish_all(events, traceparent=TRACEPARENT)
    assert report.ok and report.delivered == len(events) and report.failed == 0

    topics = sorted({topic_name(name, prefix) for name in SOURCE_TYPES})
    received = consume(bootstrap, topics, len(events))
    assert len(received) == len(events)
    by_id = {e.envelope.event_id: e for e in received}
    for sent in events:
        got = by_id[sent.envelope.event_id]
        assert got.type == sent.type
        assert got.envelope == sent.envelope
        payload = dict(got.payload)
        assert payload.pop("_traceparent") == TRACEPARENT.encode()
        assert payload == dict(sent.payload)


def test_events_of_one_subject_keep_their_order(bootstrap: str, prefix: str) -> None:
    generator = TrafficGenerator(seed=3, types=("ContentSubmitted",))
    template = generator.make("ContentSubmitted")
    events = [
        dataclasses.replace(template, payload={**template.payload, "text": f"turn {i}"})
        for i in range(50)
    ]
    events = [
        dataclasses.replace(e, envelope=dataclasses.replace(e.envelope, event_id=uuid.uuid4()))
        for e in events
    ]
    with KafkaEventPublisher(bootstrap, topic_prefix=prefix) as publisher:
        publisher.publish_all(events).raise_for_failures()
    received = consume(bootstrap, [topic_name("ContentSubmitted", prefix)], len(events))
    assert [e.payload["text"] for e in received] == [f"turn {i}" for i in range(50)]


def test_an_invalid_event_stops_the_whole_batch(bootstrap: str, prefix: str) -> None:
    generator = TrafficGenerator(seed=5, types=("ContentSubmitted",))
    good = [generator.make("ContentSubmitted") for _ in range(3)]
    bad = dataclasses.replace(good[1], payload={**good[1].payload, "content_type": "podcast"})
    with (
        KafkaEventPublisher(bootstrap, topic_prefix=prefix) as publisher,
        pytest.raises(ValidationError) as caught,
    ):
        publisher.publish_all([good[0], bad, good[2]])
    assert caught.value.field == "content_type"
    assert _end_offset(bootstrap, topic_name("ContentSubmitted", prefix)) == 0


def test_broker_rejections_are_reported_per_event(bootstrap: str) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}."
    topic = topic_name("ContentSubmitted", prefix)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(
                topic, num_partitions=1, replication_factor=1, config={"max.message.bytes": "2048"}
            )
        ]
    )
    for future in futures.values():
        future.result(30)
    try:
        generator = TrafficGenerator(seed=8, types=("ContentSubmitted",))
        small = generator.make("ContentSubmitted")
        small = dataclasses.replace(small, payload={**small.payload, "text": "short"})
        big = generator.make("ContentSubmitted")
        big = dataclasses.replace(big, payload={**big.payload, "text": "x" * 20_000})
        # No client-side compression, so the broker sees the oversized batch and refuses it.
        with KafkaEventPublisher(
            bootstrap,
            topic_prefix=prefix,
            compression="none",
            config={"linger.ms": 0, "batch.num.messages": 1},
        ) as publisher:
            report = publisher.publish_all([small, big])
        assert report.delivered == 1
        assert [f.index for f in report.failures] == [1]
        assert report.failures[0].event_id == str(big.envelope.event_id)
        assert "too large" in report.failures[0].error.lower()
    finally:
        _delete_prefixed(bootstrap, prefix)


def _fairstream(*argv: str, stdin: str, prefix: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAIRSTREAM_TOPIC_PREFIX": prefix}
    return subprocess.run(
        [sys.executable, "-m", "fairstream.cli", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


def test_cli_publishes_a_valid_file_and_nothing_from_an_invalid_one(
    bootstrap: str, prefix: str
) -> None:
    topic = topic_name("ContentSubmitted", prefix)
    bad = "\n".join(
        [
            json.dumps({"content_id": "c-1", "text": "fine"}),
            json.dumps({"content_id": "c-2"}),
        ]
    )
    result = _fairstream("publish", "ContentSubmitted", "-", stdin=bad, prefix=prefix)
    assert result.returncode == 2
    assert "line 2: field text" in result.stderr
    assert _end_offset(bootstrap, topic) == 0

    lines = "\n".join(
        json.dumps({"content_id": f"cli-{i}", "text": f"Sentence number {i}."}) for i in range(20)
    )
    result = _fairstream(
        "publish",
        "ContentSubmitted",
        "-",
        "--correlation-id",
        "cli-test",
        stdin=lines,
        prefix=prefix,
    )
    assert result.returncode == 0, result.stderr
    assert "read 20, valid 20, invalid 0, published 20, failed 0" in result.stdout
    received = consume(bootstrap, [topic], 20)
    assert sorted(e.payload["content_id"] for e in received) == sorted(
        f"cli-{i}" for i in range(20)
    )
    assert {e.envelope.source for e in received} == {"fairstream-cli"}
    assert {e.envelope.correlation_id for e in received} == {"cli-test"}


def test_generate_publishes_to_kafka(bootstrap: str, prefix: str) -> None:
    result = _fairstream(
        "generate",
        "--count",
        "40",
        "--seed",
        "2",
        "--types",
        "ModelUsageRecorded",
        stdin="",
        prefix=prefix,
    )
    assert result.returncode == 0, result.stderr
    assert "published 40, failed 0" in result.stderr
    received = consume(bootstrap, [topic_name("ModelUsageRecorded", prefix)], 40)
    assert len(received) == 40
    assert all(e.envelope.source == "fairstream-generator" for e in received)
