"""Unit tests for the topic catalog and the pure topic planner (no Kafka needed)."""

from __future__ import annotations

import argparse
import io

import pytest

from events.topics import (
    DEAD_LETTER_TOPICS,
    DLQ_RETENTION_MS,
    EVENT_RETENTION_MS,
    EVENT_TOPICS,
    TOPICS,
    TopicSpec,
    select_topics,
    topic_spec,
)
from fairstream.cli import build_parser
from producers.topic_admin import ActualTopic, TopicStatus, plan_topic, plan_topics

CONTRACT_TOPICS = {
    "content.submitted",
    "bias.scored",
    "bias.alerts",
    "analytics.events",
    "model.usage",
    "metrics.windows",
    "niche.researched",
    "opportunity.scored",
    "campaign.planned",
    "campaign.screened",
    "revenue.projection.requested",
    "revenue.projected",
    "agent.tasks.completed",
}


def _actual(spec: TopicSpec, brokers: int = 1, **overrides: object) -> ActualTopic:
    configs = dict(spec.configs_for(brokers))
    configs.update({k.replace("_", "."): str(v) for k, v in overrides.items()})
    partitions = int(configs.pop("partitions", spec.partitions))
    replicas = int(configs.pop("replicas", spec.replicas_for(brokers)))
    return ActualTopic(spec.name, partitions, replicas, configs)


def test_every_contract_topic_has_a_spec_and_a_dead_letter_topic() -> None:
    assert {spec.name for spec in EVENT_TOPICS} == CONTRACT_TOPICS
    dlq_names = {spec.name for spec in DEAD_LETTER_TOPICS}
    for spec in EVENT_TOPICS:
        assert spec.dead_letter_topic == f"{spec.name}.dlq"
        assert spec.dead_letter_topic in dlq_names
    assert len({spec.name for spec in TOPICS}) == len(TOPICS) == 2 * len(CONTRACT_TOPICS)


def test_catalog_topics_match_the_event_catalog() -> None:
    from events import catalog

    assert {entry.topic for entry in catalog.CATALOG.values()} == CONTRACT_TOPICS
    assert set(catalog.all_topics()) == {spec.name for spec in TOPICS}


def test_retention_lets_consumers_replay_and_dead_letters_live_longer() -> None:
    for spec in EVENT_TOPICS:
        assert spec.retention_ms == EVENT_RETENTION_MS >= 7 * 24 * 3600 * 1000
        assert spec.cleanup_policy == "delete"
        dlq = topic_spec(f"{spec.name}.dlq")
        assert dlq.retention_ms == DLQ_RETENTION_MS > spec.retention_ms
        assert dlq.is_dead_letter and not spec.is_dead_letter


def test_high_volume_topics_get_more_partitions() -> None:
    assert topic_spec("content.submitted").partitions == 6
    assert topic_spec("analytics.events").partitions == 6
    assert topic_spec("model.usage").partitions == 6
    assert topic_spec("campaign.planned").partitions == 3
    # The scorer re-keys content.submitted into bias.scored by the same subject.
    assert topic_spec("bias.scored").partitions == topic_spec("content.submitted").partitions


@pytest.mark.parametrize(
    ("brokers", "replicas", "min_isr"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)]
)
def test_replication_adapts_to_cluster_size(brokers: int, replicas: int, min_isr: int) -> None:
    spec = topic_spec("content.submitted")
    assert spec.replicas_for(brokers) == replicas
    assert spec.min_isr_for(brokers) == min_isr
    assert spec.configs_for(brokers)["min.insync.replicas"] == str(min_isr)


def test_explicit_replication_factor_wins() -> None:
    spec = TopicSpec("x", partitions=1, replication_factor=2)
    assert spec.replicas_for(5) == 2


def test_invalid_specs_are_rejected() -> None:
    with pytest.raises(ValueError):
        TopicSpec("x", partitions=0)
    with pytest.raises(ValueError):
        TopicSpec("x", partitions=1, retention_ms=0)


def test_select_topics_rejects_unknown_names() -> None:
    assert select_topics(["bias.alerts"]) == (topic_spec("bias.alerts"),)
    with pytest.raises(KeyError):
        select_topics(["nope"])


def test_plan_creates_missing_topics_with_the_prefix() -> None:
    plans = plan_topics(TOPICS, {}, prefix="t-1234abcd.", brokers=1)
    assert all(p.status is TopicStatus.MISSING and p.create for p in plans)
    assert plans[0].topic == "t-1234abcd.content.submitted"


def test_plan_is_ok_when_the_cluster_matches() -> None:
    spec = topic_spec("content.submitted")
    plan = plan_topic(spec, _actual(spec), prefix="", brokers=1)
    assert plan.status is TopicStatus.OK
    assert not plan.has_changes and not plan.drifts


def test_partition_drift_is_reported_and_fixed_only_with_the_flag() -> None:
    spec = topic_spec("content.submitted")
    actual = _actual(spec, partitions=3)
    plan = plan_topic(spec, actual, prefix="", brokers=1)
    assert plan.status is TopicStatus.DRIFT
    assert [d.item for d in plan.drifts] == ["partitions"]
    assert plan.new_partitions is None and plan.unresolved
    grown = plan_topic(spec, actual, prefix="", brokers=1, grow_partitions=True)
    assert grown.new_partitions == 6 and not grown.unresolved


def test_more_partitions_than_spec_cannot_be_fixed() -> None:
    spec = topic_spec("bias.alerts")
    plan = plan_topic(spec, _actual(spec, partitions=9), prefix="", brokers=1, grow_partitions=True)
    assert plan.new_partitions is None
    assert plan.unresolved[0].fix is None


def test_retention_drift_is_altered_only_with_fix_config() -> None:
    spec = topic_spec("bias.alerts")
    actual = _actual(spec, retention_ms=604800000)
    plan = plan_topic(spec, actual, prefix="", brokers=1)
    assert [d.item for d in plan.drifts] == ["retention.ms"]
    assert not plan.config_changes
    fixed = plan_topic(spec, actual, prefix="", brokers=1, fix_config=True)
    assert fixed.config_changes == {"retention.ms": str(EVENT_RETENTION_MS)}
    assert not fixed.unresolved


def test_retention_decrease_is_flagged() -> None:
    spec = topic_spec("bias.alerts")
    plan = plan_topic(spec, _actual(spec, retention_ms=-1), prefix="", brokers=1, fix_config=True)
    assert "deletes older segments" in plan.drifts[0].note


def test_cleanup_policy_and_replication_drift_are_never_fixed() -> None:
    spec = topic_spec("bias.alerts")
    actual = _actual(spec, brokers=3, cleanup_policy="compact", replicas=1)
    plan = plan_topic(spec, actual, prefix="", brokers=3, fix_config=True, grow_partitions=True)
    assert {d.item for d in plan.unresolved} == {"cleanup.policy", "replication.factor"}
    assert "cleanup.policy" not in plan.config_changes


def test_cleanup_policy_order_does_not_matter() -> None:
    spec = TopicSpec("x", partitions=1, cleanup_policy="compact,delete")
    plan = plan_topic(spec, _actual(spec, cleanup_policy="delete, compact"), prefix="", brokers=1)
    assert plan.status is TopicStatus.OK


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_topics_list_specs_only_needs_no_broker() -> None:
    args = _parse("topics", "list", "--specs-only", "--topic-prefix", "t-x.")
    out = io.StringIO()
    assert args.func(args, out=out) == 0
    text = out.getvalue()
    assert "t-x.content.submitted" in text and "t-x.content.submitted.dlq" in text
    assert "30d" in text and "90d" in text


def test_topics_apply_reports_an_unknown_topic() -> None:
    args = _parse("topics", "apply", "--topic", "nope")
    err = io.StringIO()
    assert args.func(args, out=io.StringIO(), err=err) == 1
    assert "unknown topic 'nope'" in err.getvalue()


def test_topics_apply_fails_cleanly_without_a_broker() -> None:
    args = _parse("topics", "apply", "--bootstrap", "127.0.0.1:1", "--timeout", "1")
    err = io.StringIO()
    assert args.func(args, out=io.StringIO(), err=err) == 1
    assert "cannot reach Kafka" in err.getvalue()
