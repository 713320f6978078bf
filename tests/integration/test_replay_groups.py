"""`fairstream replay offsets`: reset a real consumer group's offsets on the local stack."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from stacktest import REPO_ROOT, settings_env

from fairstream.settings import Settings
from operations.replay.groups import (
    GroupActiveError,
    KafkaGroupOffsets,
    ShiftBy,
    ToDatetime,
    ToEarliest,
    ToLatest,
    ToOffset,
)

pytestmark = pytest.mark.integration
PER_PARTITION = 10


@pytest.fixture
def topic(isolated_settings: Settings, test_id: str) -> Iterator[str]:
    """Create a two-partition topic holding 10 records per partition; delete it after."""
    name = f"t-{test_id}.groups"
    admin = AdminClient({"bootstrap.servers": isolated_settings.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(name, 2, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": isolated_settings.kafka_bootstrap, "acks": "all"})
    for partition in (0, 1):
        for i in range(PER_PARTITION):
            producer.produce(name, value=f"{partition}-{i}".encode(), partition=partition)
    assert producer.flush(60) == 0
    yield name
    for future in admin.delete_topics([name], operation_timeout=30).values():
        future.result(30)


def commit(settings: Settings, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Make `group` commit offsets with a real consumer, then leave."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    try:
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        consumer.commit(offsets=tps, asynchronous=False)
    finally:
        consumer.close()


def committed(settings: Settings, group: str, topic: str) -> dict[int, int | None]:
    """Read the group's committed offsets back with list_consumer_group_offsets."""
    found = KafkaGroupOffsets(settings.kafka_bootstrap).committed(group, [(topic, 0), (topic, 1)])
    return {p: o for (_, p), o in found.items()}


def test_reset_offsets_of_a_real_group(
    isolated_settings: Settings, topic: str, test_id: str
) -> None:
    settings = isolated_settings
    group = f"t-{test_id}-processor"
    commit(settings, group, {(topic, 0): 7, (topic, 1): 3})
    groups = KafkaGroupOffsets(settings.kafka_bootstrap)
    assert groups.active_members(group) == []

    changes = groups.plan(group, [topic], ShiftBy(-5))
    assert [(c.partition, c.current, c.new) for c in changes] == [(0, 7, 2), (1, 3, 0)]
    assert committed(settings, group, topic) == {0: 7, 1: 3}  # planning changes nothing
    groups.execute(group, changes)
    assert committed(settings, group, topic) == {0: 2, 1: 0}

    groups.execute(group, groups.plan(group, [topic], ToOffset(99)))
    assert committed(settings, group, topic) == {0: PER_PARTITION, 1: PER_PARTITION}
    groups.execute(group, groups.plan(group, [topic], ToEarliest()))
    assert committed(settings, group, topic) == {0: 0, 1: 0}
    groups.execute(group, groups.plan(group, [topic], ToLatest()))
    assert committed(settings, group, topic) == {0: PER_PARTITION, 1: PER_PARTITION}
    # Every record was written a moment ago: an old time resets to the start, a future one
    # (no record that recent) to the log end.
    groups.execute(group, groups.plan(group, [topic], ToDatetime(0)))
    assert committed(settings, group, topic) == {0: 0, 1: 0}
    future = int(time.time() * 1000) + 3_600_000
    groups.execute(group, groups.plan(group, [topic], ToDatetime(future)))
    assert committed(settings, group, topic) == {0: PER_PARTITION, 1: PER_PARTITION}

    # The command: a dry run prints current -> new and changes nothing; --execute resets.
    env = settings_env(settings)
    base = [sys.executable, "-m", "fairstream.cli", "replay", "offsets", group, "--topic", topic]
    out = subprocess.run(
        [*base, "--shift-by", "-4"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "dry run: nothing changed" in out
    assert out.splitlines()[1].split()[-2:] == [str(PER_PARTITION), str(PER_PARTITION - 4)]
    assert committed(settings, group, topic) == {0: PER_PARTITION, 1: PER_PARTITION}
    subprocess.run(
        [*base, "--shift-by", "-4", "--execute"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert committed(settings, group, topic) == {0: PER_PARTITION - 4, 1: PER_PARTITION - 4}


def test_reset_is_refused_while_the_group_has_active_members(
    isolated_settings: Settings, topic: str, test_id: str
) -> None:
    settings = isolated_settings
    group = f"t-{test_id}-busy"
    commit(settings, group, {(topic, 0): 5, (topic, 1): 5})
    member = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "client.id": "busy-member",
        }
    )
    try:
        member.subscribe([topic])
        deadline = time.monotonic() + 60
        while not member.assignment() and time.monotonic() < deadline:
            member.poll(0.5)
        assert member.assignment(), "the member never joined"
        groups = KafkaGroupOffsets(settings.kafka_bootstrap)
        assert groups.active_members(group)
        changes = groups.plan(group, [topic], ToEarliest())
        with pytest.raises(GroupActiveError, match="active member"):
            groups.execute(group, changes)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "fairstream.cli",
                "replay",
                "offsets",
                group,
                "--topic",
                topic,
                "--to-earliest",
                "--execute",
            ],
            env=settings_env(settings),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 2 and "active member" in out.stderr
    finally:
        member.close()
    assert committed(settings, group, topic) == {0: 5, 1: 5}
