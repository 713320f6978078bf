"""Read partitions, watermarks and offsets for times from Kafka (confluent-kafka)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from fairstream.kafka_security import librdkafka_security
from operations.replay.exceptions import PlanError
from operations.replay.plan import Partition, PartitionBounds

TIMEOUT = 10.0
RETRIES = 20


class KafkaOffsets:
    """Answer offset questions about topics with a consumer that never joins a group."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                **librdkafka_security(),
                "group.id": "fairstream-replay-planner",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()

    def partitions(self, topics: Sequence[str]) -> list[Partition]:
        """Return every (topic, partition) of the topics; raise PlanError for a missing topic."""
        found: list[Partition] = []
        for topic in topics:
            meta = self._consumer.list_topics(topic, timeout=TIMEOUT).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise PlanError(f"topic {topic!r} does not exist")
            found.extend((topic, p) for p in sorted(meta.partitions))
        return found

    def bounds(self, topics: Sequence[str]) -> list[PartitionBounds]:
        """Return the [low, high) watermarks of every partition of the topics."""
        result = []
        for topic, partition in self.partitions(topics):
            low, high = self._watermarks(topic, partition)
            result.append(PartitionBounds(topic, partition, int(low), int(high)))
        return result

    def _watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        # A topic just created may not have elected its leaders yet: retry for a while.
        for attempt in range(RETRIES):
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=TIMEOUT, cached=False
                )
                return int(low), int(high)
            except KafkaException as exc:
                if attempt == RETRIES - 1 or not _transient(exc.args[0]):
                    raise PlanError(f"{topic}:{partition}: {exc.args[0].str()}") from exc
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def offsets_for_time(
        self, parts: Sequence[Partition], epoch_ms: int
    ) -> dict[Partition, int | None]:
        """Return the first offset at or after the time per partition (None: none that recent)."""
        query = [TopicPartition(t, p, epoch_ms) for t, p in parts]
        try:
            answers = self._consumer.offsets_for_times(query, timeout=TIMEOUT)
        except KafkaException as exc:
            raise PlanError(f"offsets_for_times failed: {exc}") from exc
        return {(a.topic, a.partition): (a.offset if a.offset >= 0 else None) for a in answers}


TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
}


def _transient(error: KafkaError) -> bool:
    return bool(error.retriable()) or error.code() in TRANSIENT


def delete_group(bootstrap: str, group: str) -> bool:
    """Delete a finished (empty) consumer group; return whether Kafka deleted it."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **librdkafka_security()})
    try:
        for future in admin.delete_consumer_groups([group], request_timeout=TIMEOUT).values():
            future.result(TIMEOUT)
    except KafkaException:
        return False
    return True
