"""Prove the broker works in full with both client stacks fairstream uses.

confluent-kafka (publisher, tools) and aiokafka (Faust, projections): idempotent
produce with acks=all, consumer groups with rebalancing, committed offsets, and a
Faust table whose compacted changelog topic restores state after a restart.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from fairstream.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def bootstrap() -> str:
    return Settings().kafka_bootstrap


@pytest.fixture
def topic(bootstrap: str) -> Iterator[str]:
    name = f"t-compat-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


def test_confluent_idempotent_produce_and_group_consume(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    delivered: list[int] = []
    for i in range(200):
        producer.produce(
            topic, key=f"k{i % 17}", value=f"v{i}", on_delivery=lambda e, m: delivered.append(1)
        )
    assert producer.flush(30) == 0
    assert len(delivered) == 200

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    for _ in range(200):
        msgs = consumer.consume(100, timeout=1.0)
        seen += sum(1 for m in msgs if m.error() is None)
        if seen >= 200:
            break
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
    consumer.close()
    assert seen == 200
    assert sum(tp.offset for tp in committed) == 200


async def test_aiokafka_group_rebalances_between_two_members(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i in range(100):
            await producer.send(topic, key=f"k{i}".encode(), value=b"x")
        await producer.flush()
    finally:
        await producer.stop()

    group = f"g-{uuid.uuid4().hex[:8]}"
    first = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await first.start()
    try:
        await first.getmany(timeout_ms=3000)
        assert len(first.assignment()) == 4
        second = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await second.start()
        try:
            for _ in range(30):
                await asyncio.gather(first.getmany(timeout_ms=500), second.getmany(timeout_ms=500))
                if first.assignment() and second.assignment():
                    break
            assert first.assignment() and second.assignment()
            assert first.assignment().isdisjoint(second.assignment())
            for member in (first, second):
                ends = await member.end_offsets(list(member.assignment()))
                await member.commit({tp: off for tp, off in ends.items()})
            got = await second.committed(next(iter(second.assignment())))
            assert got is not None
        finally:
            await second.stop()
    finally:
        await first.stop()


def _counting_app(bootstrap: str, app_id: str, source: str) -> tuple[faust.App, faust.Table]:
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_replication_factor=1,
        topic_partitions=4,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
    )
    table = app.Table("counts", default=list, partitions=4)
    src = app.topic(source, key_type=bytes, value_type=bytes)

    @app.agent(src)
    async def count(stream: faust.StreamT[bytes]) -> None:
        # Keep the distinct message ids per key: Faust is at-least-once, so a record
        # re-delivered after a restart must not change the state.
        async for key, value in stream.items():
            seen = set(table[key.decode()]) | {value.decode()}
            table[key.decode()] = sorted(seen)

    return app, table


async def _run_until(app: faust.App, table: faust.Table, expect: dict[str, int]) -> dict[str, int]:
    await app.start()
    try:
        for _ in range(240):
            await asyncio.sleep(0.25)
            snapshot = {k: len(table[k]) for k in expect}
            if snapshot == expect:
                # Commit before stopping: Faust is at-least-once, so an uncommitted offset
                # would be processed again by the next worker and counted twice.
                await app.consumer.commit()
                return snapshot
        return {k: len(table[k]) for k in expect}
    finally:
        await app.stop()


async def test_faust_table_changelog_is_compacted_and_restores(bootstrap: str, topic: str) -> None:
    app_id = f"compat-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(40):
            await producer.send(topic, key=f"k{i % 4}".encode(), value=f"m{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    app, table = _counting_app(bootstrap, app_id, topic)
    first = await _run_until(app, table, {f"k{i}": 10 for i in range(4)})
    assert first == {f"k{i}": 10 for i in range(4)}

    changelog = f"{app_id}-counts-changelog"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, changelog)
    configs = admin.describe_configs([res])[res].result(30)
    assert configs["cleanup.policy"].value == "compact"

    # A fresh worker with the same id must restore the counts from the changelog and go on.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=b"k0", value=b"m40")
    finally:
        await producer.stop()
    app2, table2 = _counting_app(bootstrap, app_id, topic)
    second = await _run_until(app2, table2, {"k0": 11, "k1": 10, "k2": 10, "k3": 10})
    assert second == {"k0": 11, "k1": 10, "k2": 10, "k3": 10}
    admin.delete_topics([changelog])
