"""Read partitions, watermarks and offsets for times from Kafka (confluent-kafka)."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

from operations.replay.exceptions import PlanError
from operations.replay.plan import Partition, PartitionBounds

TIMEOUT = 10.0


class KafkaOffsets:
    """Answer offset questions about topics with a consumer that never joins a group."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
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
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=TIMEOUT, cached=False
            )
            result.append(PartitionBounds(topic, partition, int(low), int(high)))
        return result

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
