"""Reconcile a Kafka cluster with the topic catalog in `events.topics`.

Planning is pure (`plan_topics`) so it is unit-tested without a broker; the
`KafkaTopicAdmin` adapter reads the cluster state and carries a plan out.
Nothing here deletes a topic or lowers a partition count: drift that cannot be
fixed without losing data is reported and left for a human.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from confluent_kafka import KafkaError, KafkaException

# confluent_kafka.admin re-exports these without listing them, which strict mypy rejects.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from events.topics import TopicSpec, prefixed
from fairstream.kafka_security import librdkafka_security

# Configs that `--fix-config` may change in place: neither loses acknowledged data
# except a retention decrease, which the plan flags in its note.
SAFE_CONFIGS = frozenset({"retention.ms", "min.insync.replicas"})


class TopicStatus(StrEnum):
    """Say how a topic on the cluster compares with its spec."""

    MISSING = "missing"
    OK = "ok"
    DRIFT = "drift"


@dataclass(frozen=True, slots=True)
class ActualTopic:
    """Hold what the cluster reports for one topic."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Drift:
    """Describe one difference between a spec and the cluster."""

    item: str
    expected: str
    actual: str
    fix: str | None
    note: str = ""

    def describe(self) -> str:
        """Render the drift as one human-readable phrase."""
        text = f"{self.item}: spec {self.expected}, actual {self.actual}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """Hold what to do with one topic: create it, alter it, grow it, or only report."""

    spec: TopicSpec
    topic: str
    brokers: int
    status: TopicStatus
    actual: ActualTopic | None = None
    drifts: tuple[Drift, ...] = ()
    config_changes: Mapping[str, str] = field(default_factory=dict)
    new_partitions: int | None = None

    @property
    def create(self) -> bool:
        """Tell whether the topic has to be created."""
        return self.status is TopicStatus.MISSING

    @property
    def has_changes(self) -> bool:
        """Tell whether applying the plan changes the cluster."""
        return self.create or bool(self.config_changes) or self.new_partitions is not None

    @property
    def unresolved(self) -> tuple[Drift, ...]:
        """Return the drift this plan leaves in place."""
        fixed = set(self.config_changes)
        if self.new_partitions is not None:
            fixed.add("partitions")
        return tuple(d for d in self.drifts if d.item not in fixed)


def _policy_set(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _config_drift(item: str, expected: str, actual: str | None, fix_config: bool) -> Drift | None:
    if actual is None:
        return Drift(item, expected, "unknown", None, "config not reported by the broker")
    if item == "cleanup.policy":
        if _policy_set(expected) == _policy_set(actual):
            return None
        return Drift(item, expected, actual, None, "not altered: changing it may discard data")
    if expected == actual:
        return None
    if item not in SAFE_CONFIGS:
        return Drift(item, expected, actual, None, "not altered automatically")
    note = ""
    if item == "retention.ms" and _lowers_retention(expected, actual):
        note = "lowering retention deletes older segments"
    if not fix_config:
        note = "use --fix-config" + (f"; {note}" if note else "")
    return Drift(item, expected, actual, "config", note)


def _lowers_retention(expected: str, actual: str) -> bool:
    try:
        want, have = int(expected), int(actual)
    except ValueError:
        return False
    return have == -1 or (want != -1 and want < have)


def plan_topic(
    spec: TopicSpec,
    actual: ActualTopic | None,
    *,
    prefix: str,
    brokers: int,
    fix_config: bool = False,
    grow_partitions: bool = False,
) -> TopicPlan:
    """Compare one spec with the cluster's view of it and decide what to do."""
    topic = prefixed(prefix, spec.name)
    if actual is None:
        return TopicPlan(spec=spec, topic=topic, brokers=brokers, status=TopicStatus.MISSING)
    drifts: list[Drift] = []
    config_changes: dict[str, str] = {}
    new_partitions: int | None = None
    if actual.partitions < spec.partitions:
        note = (
            "" if grow_partitions else "use --grow-partitions; it changes key-to-partition mapping"
        )
        drifts.append(
            Drift("partitions", str(spec.partitions), str(actual.partitions), "partitions", note)
        )
        if grow_partitions:
            new_partitions = spec.partitions
    elif actual.partitions > spec.partitions:
        drifts.append(
            Drift(
                "partitions",
                str(spec.partitions),
                str(actual.partitions),
                None,
                "Kafka cannot remove partitions; update the spec",
            )
        )
    replicas = spec.replicas_for(brokers)
    if actual.replication_factor != replicas:
        drifts.append(
            Drift(
                "replication.factor",
                str(replicas),
                str(actual.replication_factor),
                None,
                "needs a partition reassignment",
            )
        )
    for item, expected in spec.configs_for(brokers).items():
        drift = _config_drift(item, expected, actual.configs.get(item), fix_config)
        if drift is None:
            continue
        drifts.append(drift)
        if fix_config and drift.fix == "config":
            config_changes[item] = expected
    return TopicPlan(
        spec=spec,
        topic=topic,
        brokers=brokers,
        status=TopicStatus.DRIFT if drifts else TopicStatus.OK,
        actual=actual,
        drifts=tuple(drifts),
        config_changes=config_changes,
        new_partitions=new_partitions,
    )


def plan_topics(
    specs: Iterable[TopicSpec],
    actual: Mapping[str, ActualTopic],
    *,
    prefix: str,
    brokers: int,
    fix_config: bool = False,
    grow_partitions: bool = False,
) -> list[TopicPlan]:
    """Plan every spec against the cluster state keyed by physical topic name."""
    return [
        plan_topic(
            spec,
            actual.get(prefixed(prefix, spec.name)),
            prefix=prefix,
            brokers=brokers,
            fix_config=fix_config,
            grow_partitions=grow_partitions,
        )
        for spec in specs
    ]


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """Report what applying one plan did."""

    plan: TopicPlan
    actions: tuple[str, ...] = ()
    error: str | None = None


class TopicAdminError(RuntimeError):
    """Signal that the cluster could not be reached or described."""


class KafkaTopicAdmin:
    """Read and change topics through confluent-kafka's AdminClient; never delete."""

    def __init__(self, bootstrap: str, *, timeout: float = 15.0) -> None:
        self._timeout = timeout
        self._admin = AdminClient(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "fairstream-topics",
                **librdkafka_security(),
            }
        )

    def broker_count(self) -> int:
        """Return how many brokers the cluster has."""
        try:
            metadata = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise TopicAdminError(f"cannot reach Kafka: {exc}") from exc
        return len(metadata.brokers)

    def describe(self, topics: Sequence[str]) -> dict[str, ActualTopic]:
        """Return the existing topics among `topics` with partitions, replicas and configs."""
        try:
            metadata = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise TopicAdminError(f"cannot reach Kafka: {exc}") from exc
        present = [
            name
            for name in topics
            if name in metadata.topics and metadata.topics[name].error is None
        ]
        if not present:
            return {}
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in present]
        futures = self._admin.describe_configs(resources, request_timeout=self._timeout)
        configs: dict[str, dict[str, str]] = {}
        for resource, future in futures.items():
            entries: Mapping[str, ConfigEntry] = _result(future, self._timeout)
            configs[resource.name] = {
                key: entry.value for key, entry in entries.items() if entry.value is not None
            }
        result: dict[str, ActualTopic] = {}
        for name in present:
            partitions = metadata.topics[name].partitions
            replicas = max((len(p.replicas) for p in partitions.values()), default=0)
            result[name] = ActualTopic(
                name=name,
                partitions=len(partitions),
                replication_factor=replicas,
                configs=configs.get(name, {}),
            )
        return result

    def plan(
        self,
        specs: Sequence[TopicSpec],
        *,
        prefix: str,
        fix_config: bool = False,
        grow_partitions: bool = False,
    ) -> list[TopicPlan]:
        """Describe the cluster and plan every spec against it."""
        brokers = self.broker_count()
        actual = self.describe([prefixed(prefix, spec.name) for spec in specs])
        return plan_topics(
            specs,
            actual,
            prefix=prefix,
            brokers=brokers,
            fix_config=fix_config,
            grow_partitions=grow_partitions,
        )

    def wait_ready(self, topics: Sequence[str], timeout: float | None = None) -> bool:
        """Wait until every partition of `topics` has a leader; return whether they all do."""
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        pending = set(topics)
        while pending:
            try:
                metadata = self._admin.list_topics(timeout=self._timeout)
            except KafkaException:
                metadata = None
            if metadata is not None:
                for name in list(pending):
                    topic = metadata.topics.get(name)
                    if (
                        topic is not None
                        and topic.error is None
                        and topic.partitions
                        and all(
                            p.leader >= 0 and p.error is None for p in topic.partitions.values()
                        )
                    ):
                        pending.discard(name)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        return not pending

    def apply(self, plans: Sequence[TopicPlan]) -> list[ApplyOutcome]:
        """Carry out the plans: create missing topics, alter safe configs, add partitions."""
        outcomes: dict[str, ApplyOutcome] = {p.topic: ApplyOutcome(plan=p) for p in plans}
        by_topic = {p.topic: p for p in plans}
        self._create([p for p in plans if p.create], outcomes)
        self._alter_configs([p for p in plans if p.config_changes], outcomes)
        self._grow([p for p in plans if p.new_partitions is not None], outcomes)
        return [outcomes[topic] for topic in by_topic]

    def _create(self, plans: Sequence[TopicPlan], outcomes: dict[str, ApplyOutcome]) -> None:
        if not plans:
            return
        new_topics = [
            NewTopic(
                p.topic,
                num_partitions=p.spec.partitions,
                replication_factor=p.spec.replicas_for(p.brokers),
                config=p.spec.configs_for(p.brokers),
            )
            for p in plans
        ]
        futures = self._admin.create_topics(
            new_topics, operation_timeout=self._timeout, request_timeout=self._timeout
        )
        for p in plans:
            action = (
                f"created partitions={p.spec.partitions} "
                f"replication.factor={p.spec.replicas_for(p.brokers)}"
            )
            error = _future_error(futures[p.topic], self._timeout, KafkaError.TOPIC_ALREADY_EXISTS)
            if error == "exists":
                action = "already exists (created concurrently)"
                error = None
            _record(outcomes, p.topic, action if error is None else None, error)

    def _alter_configs(self, plans: Sequence[TopicPlan], outcomes: dict[str, ApplyOutcome]) -> None:
        if not plans:
            return
        resources = [
            ConfigResource(
                ResourceType.TOPIC,
                p.topic,
                incremental_configs=[
                    ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                    for key, value in p.config_changes.items()
                ],
            )
            for p in plans
        ]
        futures = self._admin.incremental_alter_configs(resources, request_timeout=self._timeout)
        by_name = {resource.name: future for resource, future in futures.items()}
        for p in plans:
            error = _future_error(by_name[p.topic], self._timeout)
            changes = ", ".join(f"{k}={v}" for k, v in p.config_changes.items())
            _record(outcomes, p.topic, f"altered {changes}" if error is None else None, error)

    def _grow(self, plans: Sequence[TopicPlan], outcomes: dict[str, ApplyOutcome]) -> None:
        if not plans:
            return
        futures = self._admin.create_partitions(
            [NewPartitions(p.topic, int(p.new_partitions or 0)) for p in plans],
            operation_timeout=self._timeout,
            request_timeout=self._timeout,
        )
        for p in plans:
            error = _future_error(futures[p.topic], self._timeout)
            action = f"partitions increased to {p.new_partitions}"
            _record(outcomes, p.topic, action if error is None else None, error)


def _record(
    outcomes: dict[str, ApplyOutcome], topic: str, action: str | None, error: str | None
) -> None:
    current = outcomes[topic]
    actions = (*current.actions, action) if action else current.actions
    errors = "; ".join(e for e in (current.error, error) if e) or None
    outcomes[topic] = ApplyOutcome(plan=current.plan, actions=actions, error=errors)


def _result(future: concurrent.futures.Future[object], timeout: float) -> dict[str, ConfigEntry]:
    try:
        value = future.result(timeout=timeout)
    except KafkaException as exc:
        raise TopicAdminError(f"cannot describe topic configs: {exc}") from exc
    if not isinstance(value, dict):
        raise TopicAdminError(f"unexpected describe_configs result: {value!r}")
    return value


def _future_error(
    future: concurrent.futures.Future[object], timeout: float, tolerated: int | None = None
) -> str | None:
    try:
        future.result(timeout=timeout)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if tolerated is not None and isinstance(err, KafkaError) and err.code() == tolerated:
            return "exists"
        return str(err or exc)
    except concurrent.futures.TimeoutError:
        return f"no answer within {timeout:.0f}s"
    return None
