"""Integration tests of the local stack: the running default stack, and clusters of their own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fairstream.stack.config import COMPONENTS, StackConfig
from fairstream.stack.kafka import run_kafka_tool
from fairstream.stack.local_stack import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> LocalStack:
    """Return the default stack; fail with a hint when it is not up."""
    local = LocalStack()
    status = local.status()
    down = [name for name in COMPONENTS if not status[name]["up"]]
    if down:
        pytest.fail(f"local stack not up ({', '.join(down)}): run `fairstream stack up`")
    return local


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _roundtrip(bootstrap: str, topic: str, *, partitions: int, rf: int, count: int = 20) -> None:
    """Create a topic, produce with acks=all, consume everything back, delete the topic."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    created = admin.create_topics(
        [NewTopic(topic, partitions, rf, config={"min.insync.replicas": str(max(1, rf - 1))})]
    )
    for future in created.values():
        future.result(timeout=30)
    metadata = admin.list_topics(topic, timeout=10).topics[topic]
    assert all(len(p.isrs) == rf for p in metadata.partitions.values())

    failures: list[Any] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(count):
        producer.produce(
            topic,
            f"value-{i}".encode(),
            key=f"key-{i}".encode(),
            on_delivery=lambda err, _msg: failures.append(err) if err else None,
        )
    assert producer.flush(30) == 0
    assert failures == []

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": _unique("stack-test"),
            "auto.offset.reset": "earliest",
        }
    )
    received: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(received) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                received.append(message.value() or b"")
    finally:
        consumer.close()
    assert sorted(received) == sorted(f"value-{i}".encode() for i in range(count))
    for future in admin.delete_topics([topic]).values():
        future.result(timeout=30)


def test_status_reports_every_endpoint(stack: LocalStack) -> None:
    status = stack.status()
    config = stack.config
    assert status["kafka"]["bootstrap"] == config.kafka_bootstrap
    assert status["postgres"]["dsn"] == config.postgres_dsn
    assert status["redis"]["url"] == config.redis_url
    assert status["ferretdb"]["url"] == config.mongo_url
    assert status["api"]["url"] == f"http://{stack.settings.api_host}:{stack.settings.api_port}"
    for name in COMPONENTS:
        assert status[name]["up"] is True
        assert status[name]["pids"] and all(isinstance(p, int) for p in status[name]["pids"])


def test_status_json_command(stack: LocalStack) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fairstream.cli", "stack", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert {*COMPONENTS, "api", "stack_dir", "env_file"} <= status.keys()
    assert all(status[name]["up"] for name in COMPONENTS)


def test_env_file_points_at_the_stack(stack: LocalStack) -> None:
    lines = stack.layout.env_file.read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert env["FAIRSTREAM_KAFKA_BOOTSTRAP"] == stack.config.kafka_bootstrap
    assert env["FAIRSTREAM_POSTGRES_DSN"] == stack.config.postgres_dsn
    assert env["FAIRSTREAM_REDIS_URL"] == stack.config.redis_url
    assert env["FAIRSTREAM_MONGO_URL"] == stack.config.mongo_url


def test_kafka_roundtrip(stack: LocalStack) -> None:
    _roundtrip(stack.config.kafka_bootstrap, _unique("stack-test"), partitions=3, rf=1)


def test_kafka_tools_run_on_the_stack_classpath(stack: LocalStack) -> None:
    bootstrap = stack.config.kafka_bootstrap.split(",")[0]
    result = run_kafka_tool(
        stack.config, "kafka-consumer-groups", ["--bootstrap-server", bootstrap, "--list"]
    )
    assert result.returncode == 0, result.stderr
    result = run_kafka_tool(
        stack.config,
        "kafka-metadata-quorum",
        ["--bootstrap-server", bootstrap, "describe", "--status"],
    )
    assert result.returncode == 0, result.stderr
    assert "LeaderId:" in result.stdout


async def test_postgres_databases(stack: LocalStack) -> None:
    import asyncpg

    conn = await asyncpg.connect(stack.config.postgres_dsn, timeout=10)
    try:
        assert await conn.fetchval("SELECT current_user") == stack.config.postgres_user
        names = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()
    assert {stack.config.postgres_database, stack.config.ferretdb_database} <= names


def test_redis_answers(stack: LocalStack) -> None:
    import redis

    client = redis.Redis.from_url(stack.config.redis_url, socket_timeout=5)
    key = _unique("stack-test")
    try:
        assert client.ping()
        client.set(key, "1", ex=60)
        assert client.incr(key) == 2
    finally:
        client.delete(key)
        client.close()


def test_ferretdb_crud_and_indexes(stack: LocalStack) -> None:
    from pymongo import ASCENDING, MongoClient
    from pymongo.errors import DuplicateKeyError

    client: MongoClient[dict[str, Any]] = MongoClient(
        stack.config.mongo_url, serverSelectionTimeoutMS=10_000
    )
    database = _unique("stack_test").replace("-", "_")
    try:
        items = client[database]["items"]
        items.insert_many(
            [{"_id": i, "kind": "odd" if i % 2 else "even", "n": i} for i in range(10)]
        )
        found = [d["_id"] for d in items.find({"kind": "odd", "n": {"$gte": 3}}).sort("n")]
        assert found == [3, 5, 7, 9]
        result = items.update_many({"kind": "even"}, {"$inc": {"n": 100}, "$set": {"seen": True}})
        assert result.modified_count == 5
        assert items.count_documents({"seen": True, "n": {"$gte": 100}}) == 5
        assert items.create_index([("kind", ASCENDING), ("n", ASCENDING)]) == "kind_1_n_1"
        items.create_index("n", unique=True)
        assert {"_id_", "kind_1_n_1", "n_1"} <= set(items.index_information())
        with pytest.raises(DuplicateKeyError):
            items.insert_one({"_id": 100, "n": 1})
    finally:
        client.drop_database(database)
        client.close()


async def test_ferretdb_id_lookups_use_an_index(stack: LocalStack) -> None:
    import asyncpg
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(
        stack.config.mongo_url, serverSelectionTimeoutMS=10_000
    )
    database = _unique("stack_test").replace("-", "_")
    try:
        client[database]["docs"].insert_many([{"_id": f"d{i}", "n": i} for i in range(300)])
        assert client[database]["docs"].find_one({"_id": "d7"}) == {"_id": "d7", "n": 7}
        assert [i["name"] for i in client[database]["docs"].list_indexes()] == ["_id_"]
        conn = await asyncpg.connect(
            stack.config.postgres_dsn_for(stack.config.ferretdb_database), timeout=10
        )
        try:
            table = await conn.fetchval(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'docs%'",
                database,
            )
            await conn.execute("SET enable_seqscan = off")  # a table this small may scan
            # The statement FerretDB 1.24 sends for a pushed-down `_id` equality.
            plan = await conn.fetch(
                f'EXPLAIN SELECT _jsonb FROM "{database}"."{table}" WHERE _jsonb->$1 @> $2',
                "_id",
                '"d7"',
            )
        finally:
            await conn.close()
        text = "\n".join(r[0] for r in plan)
        assert f"{table[:50]}_fs_id_gin" in text, text
    finally:
        client.drop_database(database)
        client.close()


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """Yield a stack of its own (tmp state dir, shared download cache); stop and purge it."""
    shared_cache = LocalStack().config.layout.cache
    local = LocalStack(StackConfig(stack_dir=tmp_path / "stack", cache_dir=shared_cache))
    try:
        yield local
    finally:
        local.down(purge=True, report=lambda _line: None)


@pytest.mark.slow
def test_three_broker_cluster(own_stack: LocalStack) -> None:
    own_stack.config = own_stack.config.model_copy(
        update={"brokers": 3, "kafka_port": 19292, "kafka_controller_port": 19293}
    )
    own_stack.up("kafka", report=lambda _line: None)
    status = own_stack.status()["kafka"]
    assert status["up"] and status["brokers"] == 3 and len(status["pids"]) == 3
    assert status["bootstrap"] == "127.0.0.1:19292,127.0.0.1:19294,127.0.0.1:19296"
    _roundtrip(status["bootstrap"], _unique("rf3"), partitions=3, rf=3, count=50)

    # One node down and back, through the supervisor API fault tests will use.
    kafka = own_stack.component("kafka", running=True)
    third = kafka.processes()[2]
    assert third.stop()
    assert not third.running()
    assert own_stack.status()["kafka"]["up"] is False
    kafka.start()
    kafka.wait_ready(120)
    assert own_stack.status()["kafka"]["up"] is True


@pytest.mark.slow
def test_kafka_3_9_1_single_broker(own_stack: LocalStack) -> None:
    own_stack.config = own_stack.config.model_copy(
        update={"kafka_version": "3.9.1", "kafka_port": 19392, "kafka_controller_port": 19393}
    )
    own_stack.up(["kafka"], report=lambda _line: None)
    status = own_stack.status()["kafka"]
    assert status["up"] and status["version"] == "3.9.1"
    _roundtrip(status["bootstrap"], _unique("k391"), partitions=2, rf=1)
