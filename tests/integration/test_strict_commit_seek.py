"""`StrictCommitConsumer.perform_seek` against a real broker: nothing read is left behind.

A rebalance clears the stream queues, then seeks every partition to its committed offset.
A partition with no committed offset must go back to its earliest record too; otherwise
records the fetcher had already handed over (and the rebalance threw away) are never read
again. That is how the reduced fault run lost a dead letter.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import faust
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fairstream.settings import Settings
from processors.faust_app import new_app

pytestmark = pytest.mark.integration

RECORDS = 3


@pytest.fixture
def topic(stack_settings: Settings) -> Iterator[str]:
    name = f"t-seek-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": stack_settings.kafka_bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(30)
    producer = Producer({"bootstrap.servers": stack_settings.kafka_bootstrap, "acks": "all"})
    for i in range(RECORDS):
        producer.produce(name, key=b"k", value=f"v{i}".encode())
    assert producer.flush(30) == 0
    yield name
    admin.delete_topics([name])[name].result(30)


async def _wait_for(seen: list[int], expected: list[int], seconds: float = 30.0) -> list[int]:
    for _ in range(int(seconds / 0.1)):
        if seen == expected:
            break
        await asyncio.sleep(0.1)
    return list(seen)


async def test_a_partition_without_a_committed_offset_is_read_again_from_its_start(
    stack_settings: Settings, topic: str, tmp_path: Path
) -> None:
    settings = stack_settings.model_copy(update={"stack_dir": tmp_path})
    # No commit during the test: the partition keeps "no committed offset".
    app = new_app(settings, f"seek-{uuid.uuid4().hex[:8]}", broker_commit_interval=3600.0)
    source = app.topic(topic, key_type=bytes, value_type=bytes)
    seen: list[int] = []

    @app.agent(source)
    async def collect(stream: faust.StreamT[bytes]) -> None:
        async for event in cast(faust.Stream[bytes], stream).events():
            seen.append(event.message.offset)

    await app.start()
    try:
        assert await _wait_for(seen, list(range(RECORDS))) == list(range(RECORDS))
        # The fetcher is now past every record, as after records were read and then
        # dropped from a stream queue by a rebalance.
        seen.clear()
        await app.consumer.perform_seek()
        assert await _wait_for(seen, list(range(RECORDS))) == list(range(RECORDS))
    finally:
        await app.stop()
