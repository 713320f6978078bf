"""Tell when a namespace's pipeline has gone quiet: topics and read models stop changing."""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import Consumer, TopicPartition

from operations.lag.collector import KafkaLagCollector

# Lag left by the analytics processor's clock ticks between two commits (up to ~20 per
# internal partition): below this the namespace counts as caught up.
IDLE_LAG = 120


class KafkaProgress:
    """Sum the end offsets of every topic of a namespace (its own and its apps' internal)."""

    def __init__(self, bootstrap: str, security: Mapping[str, str], stems: tuple[str, ...]) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                **security,
                "group.id": f"{stems[0]}progress",
                "enable.auto.commit": False,
            }
        )
        self._stems = stems

    def end_offsets(self) -> int:
        """Return the sum of the high watermarks of the namespace's topics."""
        return sum(self.end_offsets_by_topic().values())

    def end_offsets_by_topic(self) -> dict[str, int]:
        """Return each of the namespace's topics with the sum of its partitions' high watermarks."""
        out: dict[str, int] = {}
        topics = self._consumer.list_topics(timeout=20).topics
        for name, meta in topics.items():
            if not name.startswith(self._stems):
                continue
            out[name] = 0
            for p in meta.partitions:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(name, p), timeout=20
                )
                out[name] += high
        return out

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()


class GroupLag:
    """Sum the lag of every consumer group of a namespace, internal topics included."""

    def __init__(self, bootstrap: str, stem: str) -> None:
        self._collector = KafkaLagCollector(bootstrap, client_id=f"{stem}lag")
        self._stem = stem

    def total(self) -> tuple[int, int]:
        """Return the summed lag of the groups whose id starts with the namespace's stem, and
        how many such groups have committed offsets (a group still starting up shows none)."""
        samples = [s for s in self._collector.collect() if s.group.startswith(self._stem)]
        lag = sum(max(0, p.lag) for s in samples for p in s.partitions)
        return lag, sum(1 for s in samples if s.partitions)

    def behind(self) -> list[str]:
        """Describe every partition a group of the namespace has not committed to its end."""
        out = []
        for s in self._collector.collect():
            if not s.group.startswith(self._stem):
                continue
            for p in s.partitions:
                if p.lag > 0:
                    owner = "assigned" if p.assigned else "unassigned"
                    out.append(
                        f"{s.group} {p.topic}[{p.partition}] at {p.committed} of {p.log_end}"
                        f" ({owner}, group {s.state}, {s.members} members)"
                    )
        return sorted(out)

    def close(self) -> None:
        """Close the collector."""
        self._collector.close()
