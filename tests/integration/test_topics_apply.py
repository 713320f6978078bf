"""Integration tests for `fairstream topics apply|list` against the local Kafka broker."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from events.topics import (
    DAY_MS,
    EVENT_RETENTION_MS,
    TOPICS,
    apply_topics,
    topic_specs,
)
from fairstream.cli import build_parser
from fairstream.settings import Settings
from producers.topic_admin import KafkaTopicAdmin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bootstrap() -> str:
    """Return the broker address, failing clearly when Kafka is not up."""
    settings = Settings()
    try:
        AdminClient({"bootstrap.servers": settings.kafka_bootstrap}).list_topics(timeout=5)
    except Exception as exc:
        pytest.fail(f"Kafka is not answering at {settings.kafka_bootstrap}: {exc}")
    return settings.kafka_bootstrap


@pytest.fixture
def prefix(bootstrap: str) -> Iterator[str]:
    """Give the test its own topic prefix and delete every topic under it afterwards."""
    value = f"t-{uuid.uuid4().hex[:8]}."
    yield value
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(value)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(30)


def _cli(*argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    entries = next(iter(futures.values())).result(15)
    return {k: v.value for k, v in entries.items()}


def _end_offsets(bootstrap: str, topic: str) -> int:
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


def test_apply_creates_everything_then_is_idempotent(bootstrap: str, prefix: str) -> None:
    code, out, err = _cli("topics", "apply", "--topic-prefix", prefix, "--bootstrap", bootstrap)
    assert code == 0, out + err
    assert f"{len(TOPICS)} created" in out

    actual = KafkaTopicAdmin(bootstrap).describe([prefix + s.name for s in TOPICS])
    assert set(actual) == {prefix + s.name for s in TOPICS}
    content = actual[prefix + "content.submitted"]
    assert content.partitions == 6
    assert content.configs["retention.ms"] == str(EVENT_RETENTION_MS)
    dlq = actual[prefix + "content.submitted.dlq"]
    assert int(dlq.configs["retention.ms"]) > EVENT_RETENTION_MS

    code, out, _ = _cli(
        "topics", "apply", "--topic-prefix", prefix, "--bootstrap", bootstrap, "--strict"
    )
    assert code == 0
    assert f"0 created, {len(TOPICS)} ok, 0 drifted" in out
    assert "create " not in out


def test_dry_run_changes_nothing(bootstrap: str, prefix: str) -> None:
    code, out, _ = _cli("topics", "apply", "--dry-run", "--topic-prefix", prefix)
    assert code == 0
    assert "would create" in out
    assert KafkaTopicAdmin(bootstrap).describe([prefix + s.name for s in TOPICS]) == {}


def test_drift_is_reported_and_fixed_only_when_asked(bootstrap: str, prefix: str) -> None:
    topic = prefix + "content.submitted"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(
                topic, num_partitions=2, replication_factor=1, config={"retention.ms": str(DAY_MS)}
            )
        ]
    )
    for future in futures.values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value=b"keep me", key=b"k")
    assert producer.flush(15) == 0

    scope = ("--topic-prefix", prefix, "--topic", "content.submitted")
    code, out, _ = _cli("topics", "apply", *scope, "--strict")
    assert code == 3
    assert "partitions: spec 6, actual 2 (use --grow-partitions" in out
    assert f"retention.ms: spec {EVENT_RETENTION_MS}, actual {DAY_MS} (use --fix-config" in out
    assert _configs(bootstrap, topic)["retention.ms"] == str(DAY_MS)

    code, out, _ = _cli("topics", "list", *scope)
    assert code == 0
    assert "drift" in out and "6/2" in out and "30d/1d" in out

    code, out, _ = _cli("topics", "apply", *scope, "--fix-config", "--strict")
    assert code == 3  # partitions still differ
    assert "altered retention.ms" in out
    assert _configs(bootstrap, topic)["retention.ms"] == str(EVENT_RETENTION_MS)

    code, out, _ = _cli("topics", "apply", *scope, "--grow-partitions", "--strict")
    assert code == 0, out
    assert "partitions increased to 6" in out
    assert KafkaTopicAdmin(bootstrap).describe([topic])[topic].partitions == 6
    # Nothing was deleted or recreated: the message written before is still there.
    assert _end_offsets(bootstrap, topic) == 1

    code, out, _ = _cli("topics", "apply", *scope, "--strict")
    assert code == 0 and "ok" in out


def test_topic_specs_and_apply_topics_helper(bootstrap: str, prefix: str) -> None:
    specs = topic_specs(prefix, brokers=1)
    assert all(s.name.startswith(prefix) for s in specs)
    assert specs[0].dead_letter_topic == prefix + "content.submitted.dlq"
    created = apply_topics(bootstrap, specs)
    assert len(created) == len(TOPICS)
    assert apply_topics(bootstrap, specs) == []  # second run has nothing to create
