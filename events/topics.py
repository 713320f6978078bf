"""Declare every Kafka topic fairstream uses: topics as code.

One `TopicSpec` per event topic in the catalog (docs/CONTRACTS.md) plus one
dead-letter topic `<topic>.dlq` each. `fairstream topics apply` reconciles a
cluster with these specs; it creates what is missing and never deletes.

Policy:

* Retention: event topics keep 30 days (`EVENT_RETENTION_MS`) with
  `cleanup.policy=delete`, so a new or rebuilt projection can replay a month of
  history from the log. Dead-letter topics keep 90 days (`DLQ_RETENTION_MS`):
  a poisoned message must outlive the investigation and the fix.
* Partitions: 6 for the high-volume streams (content, bias scores, analytics,
  model usage), 3 otherwise; topics that a processor joins or re-keys by the
  same subject keep the same count so they stay co-partitioned. Dead-letter
  topics take 1 partition; they are low-volume and read in order by a human.
* Replication: `replication_factor=None` means min(3, brokers), so the same
  catalog runs on a one-broker dev stack and a three-broker cluster.
  `min.insync.replicas` is capped at replicas - 1 (at least 1) so acks=all
  producers can still write while one replica is down.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from producers.topic_admin import ApplyOutcome

DAY_MS = 24 * 60 * 60 * 1000
EVENT_RETENTION_MS = 30 * DAY_MS
DLQ_RETENTION_MS = 90 * DAY_MS
HIGH_VOLUME_PARTITIONS = 6
DEFAULT_PARTITIONS = 3
DLQ_PARTITIONS = 1
DLQ_SUFFIX = ".dlq"
MAX_REPLICATION_FACTOR = 3


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """Describe one topic as it should exist; `name` carries no test prefix."""

    name: str
    partitions: int
    retention_ms: int = EVENT_RETENTION_MS
    cleanup_policy: str = "delete"
    min_insync_replicas: int = 2
    replication_factor: int | None = None
    dead_letter_topic: str | None = None

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"{self.name}: partitions must be >= 1")
        if self.retention_ms < -1 or self.retention_ms == 0:
            raise ValueError(f"{self.name}: retention_ms must be > 0 or -1 (infinite)")
        if self.replication_factor is not None and self.replication_factor < 1:
            raise ValueError(f"{self.name}: replication_factor must be >= 1")
        if self.min_insync_replicas < 1:
            raise ValueError(f"{self.name}: min_insync_replicas must be >= 1")

    @property
    def is_dead_letter(self) -> bool:
        """Tell whether this spec is a dead-letter topic."""
        return self.name.endswith(DLQ_SUFFIX)

    def replicas_for(self, brokers: int) -> int:
        """Return the replication factor to use on a cluster of `brokers` brokers."""
        if self.replication_factor is not None:
            return self.replication_factor
        return max(1, min(MAX_REPLICATION_FACTOR, brokers))

    def min_isr_for(self, brokers: int) -> int:
        """Return min.insync.replicas that still lets acks=all writes survive one lost replica."""
        return max(1, min(self.min_insync_replicas, self.replicas_for(brokers) - 1))

    def configs_for(self, brokers: int) -> dict[str, str]:
        """Return the topic-level configs this spec manages, as Kafka expects them."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            "min.insync.replicas": str(self.min_isr_for(brokers)),
        }


def dead_letter_name(topic: str) -> str:
    """Return the dead-letter topic name for `topic`."""
    return topic + DLQ_SUFFIX


def prefixed(prefix: str, name: str) -> str:
    """Return the physical topic name for `name` under a test-isolation prefix."""
    return f"{prefix}{name}"


def _event_topic(name: str, partitions: int) -> TopicSpec:
    return TopicSpec(name=name, partitions=partitions, dead_letter_topic=dead_letter_name(name))


def _dead_letter_topic(of: TopicSpec) -> TopicSpec:
    assert of.dead_letter_topic is not None
    return TopicSpec(
        name=of.dead_letter_topic,
        partitions=DLQ_PARTITIONS,
        retention_ms=DLQ_RETENTION_MS,
        cleanup_policy="delete",
        min_insync_replicas=of.min_insync_replicas,
        replication_factor=of.replication_factor,
    )


EVENT_TOPICS: tuple[TopicSpec, ...] = (
    _event_topic("content.submitted", HIGH_VOLUME_PARTITIONS),
    _event_topic("bias.scored", HIGH_VOLUME_PARTITIONS),
    _event_topic("bias.alerts", DEFAULT_PARTITIONS),
    _event_topic("analytics.events", HIGH_VOLUME_PARTITIONS),
    _event_topic("model.usage", HIGH_VOLUME_PARTITIONS),
    _event_topic("metrics.windows", DEFAULT_PARTITIONS),
    _event_topic("niche.researched", DEFAULT_PARTITIONS),
    _event_topic("opportunity.scored", DEFAULT_PARTITIONS),
    _event_topic("campaign.planned", DEFAULT_PARTITIONS),
    _event_topic("campaign.screened", DEFAULT_PARTITIONS),
    _event_topic("revenue.projection.requested", DEFAULT_PARTITIONS),
    _event_topic("revenue.projected", DEFAULT_PARTITIONS),
    _event_topic("agent.tasks.completed", DEFAULT_PARTITIONS),
)

DEAD_LETTER_TOPICS: tuple[TopicSpec, ...] = tuple(_dead_letter_topic(t) for t in EVENT_TOPICS)

TOPICS: tuple[TopicSpec, ...] = EVENT_TOPICS + DEAD_LETTER_TOPICS

_BY_NAME: Mapping[str, TopicSpec] = {spec.name: spec for spec in TOPICS}


def topic_spec(name: str) -> TopicSpec:
    """Return the spec for an unprefixed topic name, raising KeyError if it is not declared."""
    return _BY_NAME[name]


def select_topics(names: Iterable[str] | None = None) -> tuple[TopicSpec, ...]:
    """Return the specs for `names` (all when None), raising KeyError on an unknown name."""
    if names is None:
        return TOPICS
    return tuple(topic_spec(name) for name in names)


def topic_specs(prefix: str = "", *, brokers: int | None = None) -> list[TopicSpec]:
    """Return every spec renamed under `prefix`; with `brokers`, replication is pinned for it."""
    specs = []
    for spec in TOPICS:
        dead_letter = spec.dead_letter_topic
        specs.append(
            dataclasses.replace(
                spec,
                name=prefixed(prefix, spec.name),
                dead_letter_topic=prefixed(prefix, dead_letter) if dead_letter else None,
                replication_factor=(
                    spec.replicas_for(brokers) if brokers is not None else spec.replication_factor
                ),
            )
        )
    return specs


def apply_topics(
    bootstrap: str, specs: Sequence[TopicSpec] | None = None, *, timeout: float = 30.0
) -> list[ApplyOutcome]:
    """Create the missing topics among `specs` (names taken as they are); never alter or delete.

    Return once every created topic has a leader for each partition. A convenience for
    tests and scripts; `fairstream topics apply` is the full tool.
    """
    from producers.topic_admin import KafkaTopicAdmin, TopicAdminError

    admin = KafkaTopicAdmin(bootstrap, timeout=timeout)
    plans = admin.plan(list(TOPICS if specs is None else specs), prefix="")
    outcomes = admin.apply([plan for plan in plans if plan.create])
    errors = [f"{o.plan.topic}: {o.error}" for o in outcomes if o.error]
    if errors:
        raise TopicAdminError("; ".join(errors))
    created = [o.plan.topic for o in outcomes]
    if not admin.wait_ready(created, timeout):
        raise TopicAdminError(f"topics created but not all ready within {timeout:.0f}s")
    return outcomes
